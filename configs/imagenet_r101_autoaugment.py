"""ImageNet, ResNet-101, AutoAugment (ImageNet policy) for 200 epochs, then 20 refinement epochs at lr 1e-4.

    python -m refine_jax.main --config=configs/imagenet_r101_autoaugment.py --workdir=gs://BUCKET/r101_aa \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Everything as `imagenet_r50_autoaugment.py` (inception crop + flip → ImageNet policy; refinement on standard
augmentation at 1e-4) but ResNet-101 and 200 augmented epochs, with the step schedule of `imagenet_r50_mixup.py`
(÷10 at 60, 120 and 180). Aim: the paper's Table 5 row for ImageNet / ResNet-101 / AutoAugment.
"""
from configs import imagenet_r50_autoaugment
from configs import imagenet_r50_mixup


def get_config():
  c = imagenet_r50_autoaugment.get_config()
  c.model = 'resnet101'
  base = imagenet_r50_mixup.get_config().phases.augmented
  c.phases.augmented.epochs = base.epochs
  c.phases.augmented.lr.boundaries_epochs = base.lr.boundaries_epochs
  return c
