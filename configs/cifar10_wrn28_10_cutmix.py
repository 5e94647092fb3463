"""CIFAR-10, WRN-28-10, CutMix (β = 1, applied with p = 0.5), then refinement.

    python -m refine_jax.main --config=configs/cifar10_wrn28_10_cutmix.py --workdir=W --config.data_dir=TFDS_DIR

Mixing as `cifar10_preact18_cutmix.py`; WRN schedule as `cifar10_wrn28_10_mixup.py` (400 epochs, lr 0.1 ×0.2
at 120/240/320, wd 5e-4, then 50 refinement epochs at 8e-4). Aim: the paper's Table 1 row for
CIFAR-10 / WRN-28-10 / CutMix.
"""
from configs import cifar10_preact18_cutmix
from configs import cifar10_wrn28_10_mixup


def get_config():
  return cifar10_wrn28_10_mixup.to_wrn(cifar10_preact18_cutmix.get_config())
