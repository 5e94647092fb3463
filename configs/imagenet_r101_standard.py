"""ImageNet, ResNet-101, standard augmentation only, one phase of 220 epochs.

    python -m refine_jax.main --config=configs/imagenet_r101_standard.py --workdir=W \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

The same as `--config=configs/paper.py:dataset=imagenet,model=resnet101,aug=standard` (all settings live in
configs/paper.py).

Paper row: Table 5, `table5/imagenet/resnet101/standard`: aug top-1/top-5 78.13/93.71 (no refined entry) (epochs
not stated).

Settings: batch 256, weight decay 1e-4 (OUR CHOICE: the paper does not state ImageNet's); augmented phase: 220
epochs, lr 0.1 ÷10 at 60/120/180, host ops `inception_crop(224)|flip_lr`; 220 epochs in one phase = the refined
rows' 200 + 20, on the same lr path: OUR CHOICE (the paper does not state the Standard rows' epochs); eval resize
256 + centre crop 224: OUR CHOICE.
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=imagenet,model=resnet101,aug=standard')
