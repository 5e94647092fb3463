"""CIFAR-10, Shake-Shake 26 2x96d, Mixup (γ = 1) for 1800 epochs, then 200 refinement epochs (paper, Table 1).

    python -m refine_jax.main --config=configs/cifar10_shake26_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Shake-Shake schedule: batch 128, cosine lr from 0.01 over the 1800 augmented epochs, weight decay 1e-3; then
200 refinement epochs on standard (pad 4 + crop 32 + flip) data.

Refinement rate: the cosine ends at ~0, so the paper's rule (continue at the final rate) would freeze the
model. We refine at a constant 1e-4 = base/100, the ratio of `cifar10_preact18_mixup.py` (base 0.1, refinement
at 0.001). This value is our choice, not read from the paper.

The augmentation comes from the PreActResNet-18 twin (`cifar10_preact18_mixup.py`); `to_shake` swaps in the
network and its schedule, so every Shake-Shake row of Table 1 is `to_shake(<PreActResNet-18 config of that
column>)`.

Aim: the paper's Table 1 row for CIFAR-10 / Shake-Shake 26 2x96d / Mixup (refined vs. Mixup alone).
"""
from configs import cifar10_preact18_mixup
from configs import common

AUG_EPOCHS, REFINE_EPOCHS = 1800, 200
BASE_LR = 0.01
REFINE_LR = BASE_LR / 100


def to_shake(c):
  """A PreActResNet-18 CIFAR config → the same augmentation on Shake-Shake 26 2x96d with its schedule.

  A config without a refine phase (the standard-augmentation baseline) trains AUG_EPOCHS + REFINE_EPOCHS in
  one cosine phase, so every row spends the same budget.
  """
  c.model = 'shake_shake26_2x96d'
  c.optimizer.weight_decay = 1e-3
  aug = c.phases.augmented
  aug.lr = common.lr('cosine', BASE_LR)
  if 'refine' in c.phase_order:
    aug.epochs = float(AUG_EPOCHS)
    c.phases.refine.epochs = float(REFINE_EPOCHS)
    c.phases.refine.lr = common.lr('constant', REFINE_LR)
  else:
    aug.epochs = float(AUG_EPOCHS + REFINE_EPOCHS)
  return c


def get_config():
  return to_shake(cifar10_preact18_mixup.get_config())
