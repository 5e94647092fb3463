"""ImageNet, ResNet-50, AutoAugment (ImageNet policy) for 300 epochs, then 20 refinement epochs at lr 1e-4.

    python -m refine_jax.main --config=configs/imagenet_r50_autoaugment.py --workdir=gs://BUCKET/r50_aa \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Host ops: inception crop 224 + flip → AutoAugment ImageNet policy (no Cutout, no mixing); refinement on the
standard inception crop + flip at 1e-4 for 20 epochs, as `imagenet_r50_mixup.py` (batch 256, wd 1e-4, eval
resize 256 + centre crop 224). The 300-epoch step schedule drops ÷10 at 90, 180 and 270: the Mixup config's
60/120/180 of 200 epochs scaled to 300 (the same fractions 0.3/0.6/0.9) — our choice, not read from the paper.
Aim: the paper's Table 5 row for ImageNet / ResNet-50 / AutoAugment (refined vs. AutoAugment alone).
"""
from configs import common
from configs import imagenet_r50_mixup

EPOCHS = 300


def get_config():
  c = imagenet_r50_mixup.get_config()
  aug = c.phases.augmented
  aug.epochs = float(EPOCHS)
  aug.lr.boundaries_epochs = tuple(round(f * EPOCHS) for f in (0.3, 0.6, 0.9))
  aug.pp = f'{common.IMAGENET_PP}|autoaugment("imagenet")'
  aug.mix.kind = 'none'
  return c
