"""CIFAR-100, Shake-Shake 26 2x96d, standard augmentation only (pad 4 + crop 32 + flip): Table 1's baseline row.

    python -m refine_jax.main --config=configs/cifar100_shake26_standard.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_shake26_standard.py` but the dataset (its docstring gives the schedule).
Aim: the paper's Table 1 row for CIFAR-100 / Shake-Shake 26 2x96d / standard augmentation (baseline).
"""
from configs import cifar10_shake26_standard


def get_config():
  c = cifar10_shake26_standard.get_config()
  c.dataset = 'cifar100'
  return c
