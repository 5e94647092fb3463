"""Tiny-ImageNet, PreActResNet-18, CutMix (β = 1) applied with p = 0.5, then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_cutmix_p05.py --workdir=W \
        --config.data_dir=TINY_ROOT

CutMix as `cifar10_preact18_cutmix.py`; data, schedule and refinement as `tinyimagenet_preact18_mixup_g02.py`
(400 + 50 epochs). Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / CutMix p = 0.5.
"""
from configs import cifar10_preact18_cutmix
from configs import tinyimagenet_preact18_mixup_g02


def get_config():
  c = tinyimagenet_preact18_mixup_g02.to_tinyimagenet(cifar10_preact18_cutmix.get_config())
  c.phases.augmented.mix.prob = 0.5
  return c
