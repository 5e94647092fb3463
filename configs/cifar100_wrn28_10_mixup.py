"""CIFAR-100, WRN-28-10, Mixup γ = 1, 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_mixup.py --workdir=W --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=mixup` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/wrn28_10/mixup`: aug 82.11 → ref 84.25.

Settings: batch 128, weight decay 5e-4; augmented phase: 400 epochs, lr 0.1 ÷5 at 120/240/320, host ops
`pad_crop(32,4)|flip_lr`; refine phase: 50 epochs at the augmented phase's final rate, host ops
`pad_crop(32,4)|flip_lr`.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=wrn28_10,aug=mixup')
