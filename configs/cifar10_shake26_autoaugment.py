"""CIFAR-10, Shake-Shake 26 2x96d, AutoAugment (CIFAR-10 policy) + Cutout 16, then refinement.

    python -m refine_jax.main --config=configs/cifar10_shake26_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

Host ops as `cifar10_preact18_autoaugment.py` (standard augmentation → policy → Cutout 16); schedule as
`cifar10_shake26_mixup.py` (1800 epochs, cosine from 0.01, wd 1e-3, batch 128, then 200 refinement epochs at
1e-4). Aim: the paper's Table 1 row for CIFAR-10 / Shake-Shake 26 2x96d / AutoAugment.
"""
from configs import cifar10_preact18_autoaugment
from configs import cifar10_shake26_mixup


def get_config():
  return cifar10_shake26_mixup.to_shake(cifar10_preact18_autoaugment.get_config())
