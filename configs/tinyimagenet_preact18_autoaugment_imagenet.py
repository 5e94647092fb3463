"""Tiny-ImageNet, PreActResNet-18, AutoAugment (ImageNet policy) + Cutout 32 on the host, then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_autoaugment_imagenet.py --workdir=W \
        --config.data_dir=TINY_ROOT

Everything as `tinyimagenet_preact18_autoaugment_cifar.py` (standard augmentation → policy → Cutout 32, then
refinement on standard augmentation) but the ImageNet policy, with its `'imagenet'` magnitude mapping scaled
to 64 px (docs/autoaugment.md). Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 /
AutoAugment with the ImageNet policy.
"""
from configs import tinyimagenet_preact18_autoaugment_cifar
from configs import tinyimagenet_preact18_mixup_g02 as tiny


def get_config():
  c = tinyimagenet_preact18_autoaugment_cifar.get_config()
  c.phases.augmented.pp = f'{tiny.TINY_PP}|autoaugment("imagenet")|cutout(32)'
  return c
