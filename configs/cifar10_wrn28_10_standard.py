"""CIFAR-10, WRN-28-10, standard augmentation only (pad 4 + crop 32 + flip): Table 1's baseline row.

    python -m refine_jax.main --config=configs/cifar10_wrn28_10_standard.py --workdir=W --config.data_dir=TFDS_DIR

One phase of 450 epochs (the refined rows' 400 + 50), lr 0.1 ×0.2 at 120, 240 and 320, wd 5e-4, batch 128: the
same budget as the refined runs. Aim: the paper's Table 1 baseline row for CIFAR-10 / WRN-28-10.
"""
from configs import cifar10_preact18_standard
from configs import cifar10_wrn28_10_mixup


def get_config():
  return cifar10_wrn28_10_mixup.to_wrn(cifar10_preact18_standard.get_config())
