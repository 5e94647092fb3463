"""Tiny-ImageNet, PreActResNet-18, Manifold Mixup γ = 0.2 (input, stage-1 or stage-2 output), then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_manifold_mixup_g02.py --workdir=W \
        --config.data_dir=TINY_ROOT

Mixing points as `cifar10_preact18_manifold_mixup.py`; data, schedule and refinement as
`tinyimagenet_preact18_mixup_g02.py` (400 + 50 epochs). Aim: the paper's Table 4 row for Tiny-ImageNet /
PreActResNet-18 / Manifold Mixup γ = 0.2.
"""
from configs import cifar10_preact18_manifold_mixup
from configs import tinyimagenet_preact18_mixup_g02


def get_config():
  c = tinyimagenet_preact18_mixup_g02.to_tinyimagenet(cifar10_preact18_manifold_mixup.get_config())
  c.phases.augmented.mix.gamma = 0.2
  return c
