"""CIFAR-100, PreActResNet-18, Mixup (γ = 1) for 400 epochs, then 50 refinement epochs (paper, Table 1).

    python -m refine_jax.main --config=configs/cifar100_preact18_mixup.py --workdir=W \
        --config.data_dir=PATH_TO_TFDS

Paper: batch 128, lr 0.1 ÷10 at epochs 150 and 275, weight decay 1e-4, refinement at 0.001.
Aim (He et al.): 78.95 → 80.85 test accuracy after refinement.
"""
from configs import cifar10_preact18_mixup


def get_config():
  c = cifar10_preact18_mixup.get_config()
  c.dataset = 'cifar100'
  return c
