"""CIFAR-100, WRN-28-10, Manifold Mixup (input, stage-1 or stage-2 output) γ = 1, 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_manifold_mixup.py --workdir=W \
        --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=manifold_mixup` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/wrn28_10/manifold_mixup`: aug 83.02 → ref 84.77.

Settings: batch 128, weight decay 5e-4; augmented phase: 400 epochs, lr 0.1 ÷5 at 120/240/320, host ops
`pad_crop(32,4)|flip_lr`; refine phase: 50 epochs at the augmented phase's final rate, host ops
`pad_crop(32,4)|flip_lr`; mixing points input / stage 1 / stage 2 as the Manifold Mixup paper: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=wrn28_10,aug=manifold_mixup')
