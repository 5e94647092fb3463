"""Tiny-ImageNet, PreActResNet-18, standard augmentation only, one phase of 450 epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_standard.py --workdir=W \
        --config.data_dir=TINY_ROOT

The same as `--config=configs/paper.py:dataset=tinyimagenet,model=preact18,aug=standard` (all settings live in
configs/paper.py).

Paper row: Table 4, `table4/tinyimagenet/preact18/standard`: aug best/last 60.84/60.68 (no refined entry).

Settings: batch 128, weight decay 1e-4; augmented phase: 450 epochs, lr 0.1 ÷10 at 150/275, host ops
`pad_crop(64,4)|flip_lr`; 450 epochs in one phase = the refined rows' 400 + 50, on the same lr path: OUR CHOICE
(the paper does not state the Standard rows' epochs); PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no
BN-ReLU before pooling): OUR CHOICE (configs/paper.py PREACT_VARIANT); Tiny-ImageNet as an image folder
(launch/prepare_tiny_imagenet.py, docs/tiny_imagenet.md), eval on its labelled val split; standard augmentation pad
4 + crop 64 + flip: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=tinyimagenet,model=preact18,aug=standard')
