"""CIFAR-100, PreActResNet-18, CutMix (β = 1, applied with p = 0.5) then refinement.

    python -m refine_jax.main --config=configs/cifar100_preact18_cutmix.py --workdir=W --config.data_dir=TFDS_DIR

Paper (Table 1): CutMix p = 0.5, 400 augmented + 50 refinement epochs; refinement raises test accuracy over
CutMix alone.
"""
from configs import cifar10_preact18_cutmix


def get_config():
  c = cifar10_preact18_cutmix.get_config()
  c.dataset = 'cifar100'
  return c
