"""CIFAR-10, WRN-28-10, Mixup (γ = 1) for 400 epochs, then 50 refinement epochs (paper, Table 1).

    python -m refine_jax.main --config=configs/cifar10_wrn28_10_mixup.py --workdir=W --config.data_dir=TFDS_DIR

The paper's WRN schedule: batch 128, lr 0.1 ×0.2 at epochs 120, 240 and 320, weight decay 5e-4; refinement on
standard (pad 4 + crop 32 + flip) data at the final rate 0.1·0.2³ = 8e-4 (`lr.base` unset). The augmentation
itself comes from the PreActResNet-18 twin (`cifar10_preact18_mixup.py`); `to_wrn` swaps in the network and
its schedule, so every WRN row of Table 1 is `to_wrn(<PreActResNet-18 config of that column>)`.
Aim: the paper's Table 1 row for CIFAR-10 / WRN-28-10 / Mixup (refined vs. Mixup alone).
"""
from configs import cifar10_preact18_mixup
from configs import common

AUG_EPOCHS, REFINE_EPOCHS = 400, 50


def to_wrn(c):
  """A PreActResNet-18 CIFAR config → the same augmentation on WRN-28-10 with the paper's WRN schedule.

  A config without a refine phase (the standard-augmentation baseline) trains AUG_EPOCHS + REFINE_EPOCHS in
  one phase, so every row spends the same budget.
  """
  c.model = 'wide_resnet28_10'
  c.optimizer.weight_decay = 5e-4
  aug = c.phases.augmented
  aug.lr = common.lr('multistep', 0.1, (120, 240, 320), 0.2)
  if 'refine' in c.phase_order:
    aug.epochs = float(AUG_EPOCHS)
    c.phases.refine.epochs = float(REFINE_EPOCHS)
    c.phases.refine.lr = common.lr('constant', None)  # continue at the final rate, 8e-4
  else:
    aug.epochs = float(AUG_EPOCHS + REFINE_EPOCHS)
  return c


def get_config():
  return to_wrn(cifar10_preact18_mixup.get_config())
