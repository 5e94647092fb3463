"""CIFAR-100, Shake-Shake 26 2x96d, AutoAugment (CIFAR-10 policy) + Cutout 16, then refinement.

    python -m refine_jax.main --config=configs/cifar100_shake26_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_shake26_autoaugment.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / Shake-Shake 26 2x96d / AutoAugment.
"""
from configs import cifar10_shake26_autoaugment


def get_config():
  c = cifar10_shake26_autoaugment.get_config()
  c.dataset = 'cifar100'
  return c
