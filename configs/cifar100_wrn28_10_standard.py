"""CIFAR-100, WRN-28-10, standard augmentation only (pad 4 + crop 32 + flip): Table 1's baseline row.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_standard.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_wrn28_10_standard.py` but the dataset (its docstring gives the schedule).
Aim: the paper's Table 1 row for CIFAR-100 / WRN-28-10 / standard augmentation (baseline).
"""
from configs import cifar10_wrn28_10_standard


def get_config():
  c = cifar10_wrn28_10_standard.get_config()
  c.dataset = 'cifar100'
  return c
