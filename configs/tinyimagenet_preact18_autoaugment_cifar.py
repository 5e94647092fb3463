"""Tiny-ImageNet, PreActResNet-18, AutoAugment (CIFAR-10 policy, then Cutout 32), 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_autoaugment_cifar.py --workdir=W \
        --config.data_dir=TINY_ROOT

The same as `--config=configs/paper.py:dataset=tinyimagenet,model=preact18,aug=autoaugment,policy=cifar10` (all
settings live in configs/paper.py).

Paper row: Table 4, `table4/tinyimagenet/preact18/autoaugment_cifar`: aug best/last 65.08/64.29 → ref best/last
65.31/65.12 (CIFAR-10 policy + Cutout 32).

Settings: batch 128, weight decay 1e-4; augmented phase: 400 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(64,4)|flip_lr|autoaugment("cifar10")|cutout(32)`; refine phase: 50 epochs at the augmented phase's final
rate, host ops `pad_crop(64,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU
before pooling): OUR CHOICE (configs/paper.py PREACT_VARIANT); Tiny-ImageNet as an image folder
(launch/prepare_tiny_imagenet.py, docs/tiny_imagenet.md), eval on its labelled val split; standard augmentation pad
4 + crop 64 + flip: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=tinyimagenet,model=preact18,aug=autoaugment,policy=cifar10')
