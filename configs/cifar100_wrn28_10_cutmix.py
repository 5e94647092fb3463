"""CIFAR-100, WRN-28-10, CutMix (β = 1, applied with p = 0.5), then refinement.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_cutmix.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_wrn28_10_cutmix.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / WRN-28-10 / CutMix.
"""
from configs import cifar10_wrn28_10_cutmix


def get_config():
  c = cifar10_wrn28_10_cutmix.get_config()
  c.dataset = 'cifar100'
  return c
