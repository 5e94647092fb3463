"""CIFAR-10, Shake-Shake 26 2x96d, AutoAugment (CIFAR-10 policy, then Cutout 16), 1800 + 200 refinement epochs.

    python -m refine_jax.main --config=configs/cifar10_shake26_autoaugment.py --workdir=W \
        --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar10,model=shake26,aug=autoaugment` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar10/shake26/autoaugment`: aug 98.02 → ref 98.05.

Settings: batch 128, weight decay 1e-3; augmented phase: 1800 epochs, lr cosine from 0.01, host ops
`pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)`; refine phase: 200 epochs at constant 1e-4, host ops
`pad_crop(32,4)|flip_lr` (OUR CHOICE: a cosine schedule ends at ~0; the paper says "a reasonably small value").
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar10,model=shake26,aug=autoaugment')
