"""Tiny-ImageNet, PreActResNet-18, Manifold Mixup γ = 0.5 (input, stage-1 or stage-2 output), then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_manifold_mixup_g05.py --workdir=W \
        --config.data_dir=TINY_ROOT

Everything as `tinyimagenet_preact18_manifold_mixup_g02.py` but γ = 0.5.
Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / Manifold Mixup γ = 0.5.
"""
from configs import tinyimagenet_preact18_manifold_mixup_g02


def get_config():
  c = tinyimagenet_preact18_manifold_mixup_g02.get_config()
  c.phases.augmented.mix.gamma = 0.5
  return c
