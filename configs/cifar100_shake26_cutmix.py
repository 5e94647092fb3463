"""CIFAR-100, Shake-Shake 26 2x96d, CutMix (β = 1, applied with p = 0.5), then refinement.

    python -m refine_jax.main --config=configs/cifar100_shake26_cutmix.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_shake26_cutmix.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / Shake-Shake 26 2x96d / CutMix.
"""
from configs import cifar10_shake26_cutmix


def get_config():
  c = cifar10_shake26_cutmix.get_config()
  c.dataset = 'cifar100'
  return c
