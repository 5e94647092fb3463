"""ImageNet, ResNet-50, Mixup (γ = 0.5) for 200 epochs, then 20 refinement epochs at lr 1e-4 (paper, Table 5).

    python -m refine_jax.main --config=configs/imagenet_r50_mixup_g05.py --workdir=gs://BUCKET/r50_mixup_g05 \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Everything as `imagenet_r50_mixup.py` (batch 256, lr 0.1 ÷10 at 60/120/180, wd 1e-4, inception crop + flip;
refinement on standard augmentation at 1e-4) but γ = 0.5.
Aim: the paper's Table 5 row for ImageNet / ResNet-50 / Mixup γ = 0.5 (refined vs. Mixup alone).
"""
from configs import imagenet_r50_mixup


def get_config():
  c = imagenet_r50_mixup.get_config()
  c.phases.augmented.mix.gamma = 0.5
  return c
