"""ImageNet, ResNet-101, AutoAugment (ImageNet policy, no Cutout), 200 + 20 refinement epochs.

    python -m refine_jax.main --config=configs/imagenet_r101_autoaugment.py --workdir=W \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

The same as `--config=configs/paper.py:dataset=imagenet,model=resnet101,aug=autoaugment` (all settings live in
configs/paper.py).

Paper row: Table 5, `table5/imagenet/resnet101/autoaugment`: aug top-1/top-5 79.20/94.45 → ref 79.33/94.46.

Settings: batch 256, weight decay 1e-4 (OUR CHOICE: the paper does not state ImageNet's); augmented phase: 200
epochs, lr 0.1 ÷10 at 60/120/180, host ops `inception_crop(224)|flip_lr|autoaugment("imagenet")`; ResNet-101
AutoAugment boundaries 60/120/180: OUR CHOICE (the paper states 200 epochs only); refine phase: 20 epochs at
constant 1e-4, host ops `inception_crop(224)|flip_lr`; eval resize 256 + centre crop 224: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=imagenet,model=resnet101,aug=autoaugment')
