"""CIFAR-100, WRN-28-10, standard augmentation only, one phase of 450 epochs.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_standard.py --workdir=W --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=standard` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/wrn28_10/standard`: aug 81.15 (no refined entry).

Settings: batch 128, weight decay 5e-4; augmented phase: 450 epochs, lr 0.1 ÷5 at 120/240/320, host ops
`pad_crop(32,4)|flip_lr`; 450 epochs in one phase = the refined rows' 400 + 50, on the same lr path: OUR CHOICE
(the paper does not state the Standard rows' epochs).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=wrn28_10,aug=standard')
