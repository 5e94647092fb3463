"""CIFAR-100, PreActResNet-18, standard augmentation only, one phase of 450 epochs.

    python -m refine_jax.main --config=configs/cifar100_preact18_standard.py --workdir=W --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=preact18,aug=standard` (all settings live in
configs/paper.py).

Paper row: Table 1, `table1/cifar100/preact18/standard`: aug 75.79 → ref 76.06 (ref: refined with no augmentation
at all).

Settings: batch 128, weight decay 1e-4; augmented phase: 450 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(32,4)|flip_lr`; 450 epochs in one phase = the refined rows' 400 + 50, on the same lr path: OUR CHOICE
(the paper does not state the Standard rows' epochs); the paper's Standard "aug" number is measured before its
refinement with no augmentation; `cifar100_preact18_standard_refined.py` (400 + 50 epochs) gives both columns;
PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling): OUR CHOICE (configs/paper.py
PREACT_VARIANT).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=preact18,aug=standard')
