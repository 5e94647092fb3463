"""CIFAR-10, PreActResNet-18, Mixup γ = 1, 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/cifar10_preact18_mixup.py --workdir=W --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar10,model=preact18,aug=mixup` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar10/preact18/mixup`: aug 95.92 → ref 96.26.

Settings: batch 128, weight decay 1e-4; augmented phase: 400 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(32,4)|flip_lr`; refine phase: 50 epochs at the augmented phase's final rate, host ops
`pad_crop(32,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling):
OUR CHOICE (configs/paper.py PREACT_VARIANT).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar10,model=preact18,aug=mixup')
