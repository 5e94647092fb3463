"""Tiny-ImageNet, PreActResNet-18, CutMix (λ ~ Beta(1, 1)) with p = 0.5, 400 + 50 refinement epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_cutmix_p05.py --workdir=W \
        --config.data_dir=TINY_ROOT

The same as `--config=configs/paper.py:dataset=tinyimagenet,model=preact18,aug=cutmix,p=0.5` (all settings live in
configs/paper.py).

Paper row: Table 4, `table4/tinyimagenet/preact18/cutmix_p05`: aug best/last 64.90/64.61 → ref best/last
65.84/65.59.

Settings: batch 128, weight decay 1e-4; augmented phase: 400 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(64,4)|flip_lr`; refine phase: 50 epochs at the augmented phase's final rate, host ops
`pad_crop(64,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling):
OUR CHOICE (configs/paper.py PREACT_VARIANT); Tiny-ImageNet as an image folder (launch/prepare_tiny_imagenet.py,
docs/tiny_imagenet.md), eval on its labelled val split; standard augmentation pad 4 + crop 64 + flip: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=tinyimagenet,model=preact18,aug=cutmix,p=0.5')
