"""Tiny-ImageNet, PreActResNet-18, AutoAugment (ImageNet policy, no Cutout), 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_autoaugment_imagenet.py --workdir=W \
        --config.data_dir=TINY_ROOT

The same as `--config=configs/paper.py:dataset=tinyimagenet,model=preact18,aug=autoaugment,policy=imagenet` (all
settings live in configs/paper.py).

Paper row: Table 4, `table4/tinyimagenet/preact18/autoaugment_imagenet`: aug best/last 61.06/60.65 → ref best/last
61.82/61.75 (ImageNet policy, no Cutout).

Settings: batch 128, weight decay 1e-4; augmented phase: 400 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(64,4)|flip_lr|autoaugment("imagenet")`; refine phase: 50 epochs at the augmented phase's final rate, host
ops `pad_crop(64,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling):
OUR CHOICE (configs/paper.py PREACT_VARIANT); Tiny-ImageNet as an image folder (launch/prepare_tiny_imagenet.py,
docs/tiny_imagenet.md), eval on its labelled val split; standard augmentation pad 4 + crop 64 + flip: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=tinyimagenet,model=preact18,aug=autoaugment,policy=imagenet')
