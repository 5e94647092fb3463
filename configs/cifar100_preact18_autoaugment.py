"""CIFAR-100, PreActResNet-18, AutoAugment (CIFAR-10 policy) + Cutout 16 on the host, then refinement.

    python -m refine_jax.main --config=configs/cifar100_preact18_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

The paper's order: standard augmentation → policy → Cutout. 400 augmented + 50 refinement epochs on standard
augmentation; refinement raises test accuracy over AutoAugment alone.
"""
from configs import cifar10_preact18_autoaugment


def get_config():
  c = cifar10_preact18_autoaugment.get_config()
  c.dataset = 'cifar100'
  return c
