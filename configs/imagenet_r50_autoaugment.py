"""ImageNet, ResNet-50, AutoAugment (ImageNet policy, no Cutout), 300 + 20 refinement epochs.

    python -m refine_jax.main --config=configs/imagenet_r50_autoaugment.py --workdir=W \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

The same as `--config=configs/paper.py:dataset=imagenet,model=resnet50,aug=autoaugment` (all settings live in
configs/paper.py).

Paper row: Table 5, `table5/imagenet/resnet50/autoaugment`: aug top-1/top-5 77.83/93.70 → ref 77.98/93.86.

Settings: batch 256, weight decay 1e-4 (OUR CHOICE: the paper does not state ImageNet's); augmented phase: 300
epochs, lr 0.1 ÷10 at 75/150/225, host ops `inception_crop(224)|flip_lr|autoaugment("imagenet")`; refine phase: 20
epochs at constant 1e-4, host ops `inception_crop(224)|flip_lr`; eval resize 256 + centre crop 224: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=imagenet,model=resnet50,aug=autoaugment')
