"""ImageNet, ResNet-50, Mixup γ = 0.2, 200 + 20 refinement epochs.

    python -m refine_jax.main --config=configs/imagenet_r50_mixup.py --workdir=W \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

The same as `--config=configs/paper.py:dataset=imagenet,model=resnet50,aug=mixup,gamma=0.2` (all settings live in
configs/paper.py).

Paper row: Table 5, `table5/imagenet/resnet50/mixup_g02`: aug top-1/top-5 77.47/93.75 → ref 77.69/93.83.

Settings: batch 256, weight decay 1e-4 (OUR CHOICE: the paper does not state ImageNet's); augmented phase: 200
epochs, lr 0.1 ÷10 at 60/120/180, host ops `inception_crop(224)|flip_lr`; refine phase: 20 epochs at constant 1e-4,
host ops `inception_crop(224)|flip_lr`; eval resize 256 + centre crop 224: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=imagenet,model=resnet50,aug=mixup,gamma=0.2')
