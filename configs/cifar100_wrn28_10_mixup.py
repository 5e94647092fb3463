"""CIFAR-100, WRN-28-10, Mixup (γ = 1) for 400 epochs, then 50 refinement epochs (paper, Table 1).

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_wrn28_10_mixup.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / WRN-28-10 / Mixup.
"""
from configs import cifar10_wrn28_10_mixup


def get_config():
  c = cifar10_wrn28_10_mixup.get_config()
  c.dataset = 'cifar100'
  return c
