"""Tiny-ImageNet, PreActResNet-18, Manifold Mixup (input, stage-1 or stage-2 output) γ = 0.5, 400 + 50 refinement
epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_manifold_mixup_g05.py --workdir=W \
        --config.data_dir=TINY_ROOT

The same as `--config=configs/paper.py:dataset=tinyimagenet,model=preact18,aug=manifold_mixup,gamma=0.5` (all
settings live in configs/paper.py).

Paper row: Table 4, `table4/tinyimagenet/preact18/manifold_mixup_g05`: aug best/last 64.88/64.43 → ref best/last
65.98/65.80.

Settings: batch 128, weight decay 1e-4; augmented phase: 400 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(64,4)|flip_lr`; refine phase: 50 epochs at the augmented phase's final rate, host ops
`pad_crop(64,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU before pooling):
OUR CHOICE (configs/paper.py PREACT_VARIANT); mixing points input / stage 1 / stage 2 as the Manifold Mixup paper:
OUR CHOICE; Tiny-ImageNet as an image folder (launch/prepare_tiny_imagenet.py, docs/tiny_imagenet.md), eval on its
labelled val split; standard augmentation pad 4 + crop 64 + flip: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=tinyimagenet,model=preact18,aug=manifold_mixup,gamma=0.5')
