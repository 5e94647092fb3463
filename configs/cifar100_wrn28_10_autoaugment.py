"""CIFAR-100, WRN-28-10, AutoAugment (CIFAR-10 policy, then Cutout 16), 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/cifar100_wrn28_10_autoaugment.py --workdir=W \
        --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=autoaugment` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/wrn28_10/autoaugment`: aug 83.85 → ref 85.24.

Settings: batch 128, weight decay 5e-4; augmented phase: 400 epochs, lr cosine from 0.1, host ops
`pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)`; refine phase: 50 epochs at constant 8e-4, host ops
`pad_crop(32,4)|flip_lr` (OUR CHOICE: a cosine schedule ends at ~0; the paper says "a reasonably small value");
dropout 0.3.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=wrn28_10,aug=autoaugment')
