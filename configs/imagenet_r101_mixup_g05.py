"""ImageNet, ResNet-101, Mixup (γ = 0.5) for 200 epochs, then 20 refinement epochs at lr 1e-4 (paper, Table 5).

    python -m refine_jax.main --config=configs/imagenet_r101_mixup_g05.py --workdir=gs://BUCKET/r101_mixup_g05 \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Everything as `imagenet_r50_mixup_g05.py` but ResNet-101.
Aim: the paper's Table 5 row for ImageNet / ResNet-101 / Mixup γ = 0.5 (refined vs. Mixup alone).
"""
from configs import imagenet_r50_mixup_g05


def get_config():
  c = imagenet_r50_mixup_g05.get_config()
  c.model = 'resnet101'
  return c
