"""Tiny-ImageNet, PreActResNet-18, Mixup γ = 0.5 for 400 epochs, then 50 refinement epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_mixup_g05.py --workdir=W \
        --config.data_dir=TINY_ROOT

Everything as `tinyimagenet_preact18_mixup_g02.py` (data, schedule, refinement) but γ = 0.5.
Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / Mixup γ = 0.5.
"""
from configs import tinyimagenet_preact18_mixup_g02


def get_config():
  c = tinyimagenet_preact18_mixup_g02.get_config()
  c.phases.augmented.mix.gamma = 0.5
  return c
