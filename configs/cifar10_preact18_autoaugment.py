"""CIFAR-10, PreActResNet-18, AutoAugment (CIFAR-10 policy) + Cutout 16 on the host, then refinement.

    python -m refine_jax.main --config=configs/cifar10_preact18_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

The paper's order: standard augmentation → policy → Cutout. 400 augmented + 50 refinement epochs on standard
augmentation; refinement raises test accuracy over AutoAugment alone.
"""
from configs import cifar10_preact18_mixup


def get_config():
  c = cifar10_preact18_mixup.get_config()
  c.phases.augmented.pp = 'pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)'
  c.phases.augmented.mix.kind = 'none'
  return c
