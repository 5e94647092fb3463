"""ImageNet, ResNet-101, Mixup (γ = 0.2) for 200 epochs, then 20 refinement epochs at lr 1e-4 (paper, Table 5).

    python -m refine_jax.main --config=configs/imagenet_r101_mixup.py --workdir=gs://BUCKET/r101_mixup \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Everything as `imagenet_r50_mixup.py` (batch 256, lr 0.1 ÷10 at 60/120/180, wd 1e-4; refinement on standard
augmentation at 1e-4) but ResNet-101.
Aim: the paper's Table 5 row for ImageNet / ResNet-101 / Mixup γ = 0.2 (refined vs. Mixup alone).
"""
from configs import imagenet_r50_mixup


def get_config():
  c = imagenet_r50_mixup.get_config()
  c.model = 'resnet101'
  return c
