"""The embedded default: resnet_tiny on scikit-learn's digits, Mixup (γ = 1) then refinement.

Runs on a fresh machine with nothing downloaded, in about two minutes on 2 CPU cores:

    python -m refine_jax.main --config=configs/digits_demo.py --workdir=/tmp/refine_digits

Aim: refined test top-1 ≥ 0.95, and the paper's gap (train_aug_loss well above train_clean_loss during
Mixup; train_clean_loss falls after the switch).
"""
from configs import common


def get_config():
  c = common.get_config()
  c.dataset = 'digits'
  c.image_size = 16
  c.model = 'resnet_tiny'
  c.batch_size = 64
  c.eval_batch_size = 120
  c.optimizer.weight_decay = 5e-4
  c.diag_examples = 360
  pp = 'pad_crop(16,2)'  # no flips: digits are not mirror-symmetric
  c.phases.augmented = common.phase(30, pp, common.mix('mixup', 1.0), common.lr('multistep', 0.1, (20,)))
  c.phases.refine = common.phase(8, pp, common.mix('none'), common.lr('constant', None))
  c.eval_every_epochs = 2.0
  c.checkpoint_every_epochs = 10.0
  c.log_every_steps = 100
  return c
