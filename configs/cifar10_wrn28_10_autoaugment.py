"""CIFAR-10, WRN-28-10, AutoAugment (CIFAR-10 policy) + Cutout 16, cosine lr and dropout 0.3, then refinement.

    python -m refine_jax.main --config=configs/cifar10_wrn28_10_autoaugment.py --workdir=W --config.data_dir=TFDS_DIR

Host ops as `cifar10_preact18_autoaugment.py` (standard augmentation → policy → Cutout 16). WRN +
AutoAugment trains with a cosine schedule from 0.1 (wd 5e-4, batch 128, dropout 0.3) for 400 epochs, then
refines for 50 epochs on standard augmentation.

Refinement rate: a cosine schedule ends at ~0, so the paper's rule (continue at the final rate) would freeze
the model. We refine at a constant 8e-4, the rate the other WRN rows refine at (0.1·0.2³, the end of their
step schedule), so all WRN rows of Table 1 refine alike. This value is our choice, not read from the paper.

Aim: the paper's Table 1 row for CIFAR-10 / WRN-28-10 / AutoAugment.
"""
from configs import cifar10_preact18_autoaugment
from configs import cifar10_wrn28_10_mixup
from configs import common

REFINE_LR = 8e-4


def get_config():
  c = cifar10_wrn28_10_mixup.to_wrn(cifar10_preact18_autoaugment.get_config())
  c.model_kwargs.dropout_rate = 0.3
  c.phases.augmented.lr = common.lr('cosine', 0.1)
  c.phases.refine.lr = common.lr('constant', REFINE_LR)
  return c
