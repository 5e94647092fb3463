"""CIFAR-100, Shake-Shake 26 2x96d, Manifold Mixup (γ = 1; input, stage-1 or stage-2 output), then refinement.

    python -m refine_jax.main --config=configs/cifar100_shake26_manifold_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Everything as `cifar10_shake26_manifold_mixup.py` but the dataset (its docstring gives the
schedule and the refinement rate).
Aim: the paper's Table 1 row for CIFAR-100 / Shake-Shake 26 2x96d / Manifold Mixup.
"""
from configs import cifar10_shake26_manifold_mixup


def get_config():
  c = cifar10_shake26_manifold_mixup.get_config()
  c.dataset = 'cifar100'
  return c
