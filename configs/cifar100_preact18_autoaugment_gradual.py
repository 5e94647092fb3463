"""CIFAR-100, PreActResNet-18, AutoAugment (CIFAR-10 policy, then Cutout 16), 450 epochs, the last 50 fading it out
(gradual variant).

    python -m refine_jax.main --config=configs/cifar100_preact18_autoaugment_gradual.py --workdir=W \
        --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=preact18,aug=autoaugment,gradual=1` (all settings
live in configs/paper.py).

Paper row: none, an EXTENSION (the gradual variant: the paper reports "no significant difference" and no numbers).

Settings: batch 128, weight decay 1e-4; augmented phase: 450 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)`; gradual: over the last 50 epochs the probability of the
AutoAugment and Cutout ops falls linearly to 0 (their magnitudes kept), as the paper defines it; the linear fade
over the 50 epochs that refinement would take, in one phase: OUR CHOICE (the paper gives neither); PreActResNet-18
variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling): OUR CHOICE (configs/paper.py PREACT_VARIANT).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=preact18,aug=autoaugment,gradual=1')
