"""CIFAR-10, Shake-Shake 26 2x96d, standard augmentation only (pad 4 + crop 32 + flip): Table 1's baseline row.

    python -m refine_jax.main --config=configs/cifar10_shake26_standard.py --workdir=W --config.data_dir=TFDS_DIR

One cosine phase of 2000 epochs (the refined rows' 1800 + 200) from lr 0.01, wd 1e-3, batch 128: the same
budget as the refined runs. Aim: the paper's Table 1 baseline row for CIFAR-10 / Shake-Shake 26 2x96d.
"""
from configs import cifar10_preact18_standard
from configs import cifar10_shake26_mixup


def get_config():
  return cifar10_shake26_mixup.to_shake(cifar10_preact18_standard.get_config())
