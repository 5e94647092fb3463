"""Tiny-ImageNet, PreActResNet-18, standard augmentation only (pad 4 + crop 64 + flip): the baseline.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_standard.py --workdir=W \
        --config.data_dir=TINY_ROOT

One phase of 450 epochs (the refined rows' 400 + 50), lr 0.1 ÷10 at 150 and 275, wd 1e-4, as
`cifar10_preact18_standard.py`; data as `tinyimagenet_preact18_mixup_g02.py`. The reference the Table 4 rows
are compared with (the paper's Table 4 baseline row, if it has one).
"""
from configs import cifar10_preact18_standard
from configs import tinyimagenet_preact18_mixup_g02


def get_config():
  return tinyimagenet_preact18_mixup_g02.to_tinyimagenet(cifar10_preact18_standard.get_config())
