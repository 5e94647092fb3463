"""CIFAR-10, Shake-Shake 26 2x96d, Manifold Mixup (γ = 1; input, stage-1 or stage-2 output), then refinement.

    python -m refine_jax.main --config=configs/cifar10_shake26_manifold_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Mixing as `cifar10_preact18_manifold_mixup.py`; schedule as `cifar10_shake26_mixup.py` (1800 epochs, cosine
from 0.01, wd 1e-3, then 200 refinement epochs at 1e-4). Aim: the paper's Table 1 row for CIFAR-10 /
Shake-Shake 26 2x96d / Manifold Mixup.
"""
from configs import cifar10_preact18_manifold_mixup
from configs import cifar10_shake26_mixup


def get_config():
  return cifar10_shake26_mixup.to_shake(cifar10_preact18_manifold_mixup.get_config())
