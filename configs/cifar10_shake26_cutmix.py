"""CIFAR-10, Shake-Shake 26 2x96d, CutMix (β = 1, applied with p = 0.5), then refinement.

    python -m refine_jax.main --config=configs/cifar10_shake26_cutmix.py --workdir=W --config.data_dir=TFDS_DIR

Mixing as `cifar10_preact18_cutmix.py`; schedule as `cifar10_shake26_mixup.py` (1800 epochs, cosine from
0.01, wd 1e-3, then 200 refinement epochs at 1e-4). Aim: the paper's Table 1 row for CIFAR-10 /
Shake-Shake 26 2x96d / CutMix.
"""
from configs import cifar10_preact18_cutmix
from configs import cifar10_shake26_mixup


def get_config():
  return cifar10_shake26_mixup.to_shake(cifar10_preact18_cutmix.get_config())
