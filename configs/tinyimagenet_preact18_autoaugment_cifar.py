"""Tiny-ImageNet, PreActResNet-18, AutoAugment (CIFAR-10 policy) + Cutout 32 on the host, then refinement.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_autoaugment_cifar.py --workdir=W \
        --config.data_dir=TINY_ROOT

The paper's order, as `cifar10_preact18_autoaugment.py`: standard augmentation (pad 4 + crop 64 + flip) →
policy → Cutout, with Cutout 32 at 64 px (half the side, as Cutout 16 at 32 px). Data, schedule and refinement
(on standard augmentation) as `tinyimagenet_preact18_mixup_g02.py` (400 + 50 epochs).
Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / AutoAugment with the CIFAR policy.
"""
from configs import cifar10_preact18_autoaugment
from configs import tinyimagenet_preact18_mixup_g02 as tiny

POLICY = 'cifar10'


def get_config():
  c = tiny.to_tinyimagenet(cifar10_preact18_autoaugment.get_config())
  c.phases.augmented.pp = f'{tiny.TINY_PP}|autoaugment("{POLICY}")|cutout(32)'
  return c
