"""CIFAR-100, Shake-Shake 26 2x96d, standard augmentation only, one phase of 2000 epochs.

    python -m refine_jax.main --config=configs/cifar100_shake26_standard.py --workdir=W --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=shake26,aug=standard` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/shake26/standard`: aug 82.87 (no refined entry).

Settings: batch 128, weight decay 1e-3; augmented phase: 2000 epochs, lr cosine from 0.01, host ops
`pad_crop(32,4)|flip_lr`; 2000 epochs in one phase = the refined rows' 1800 + 200, on the same lr path: OUR CHOICE
(the paper does not state the Standard rows' epochs).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=shake26,aug=standard')
