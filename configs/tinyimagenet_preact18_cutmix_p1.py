"""Tiny-ImageNet, PreActResNet-18, CutMix (β = 1) on every batch (p = 1), then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_cutmix_p1.py --workdir=W \
        --config.data_dir=TINY_ROOT

Everything as `tinyimagenet_preact18_cutmix_p05.py` but p = 1.
Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / CutMix p = 1.
"""
from configs import tinyimagenet_preact18_cutmix_p05


def get_config():
  c = tinyimagenet_preact18_cutmix_p05.get_config()
  c.phases.augmented.mix.prob = 1.0
  return c
