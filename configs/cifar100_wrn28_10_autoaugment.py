"""CIFAR-100, WRN-28-10, AutoAugment (CIFAR-10 policy) + Cutout 16, cosine lr and dropout 0.3, then refinement.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_wrn28_10_autoaugment.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / WRN-28-10 / AutoAugment.
"""
from configs import cifar10_wrn28_10_autoaugment


def get_config():
  c = cifar10_wrn28_10_autoaugment.get_config()
  c.dataset = 'cifar100'
  return c
