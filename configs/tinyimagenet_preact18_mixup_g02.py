"""Tiny-ImageNet (200 classes, 64 px), PreActResNet-18, Mixup γ = 0.2 for 400 epochs, then 50 refinement epochs.

    python -m refine_jax.main --config=configs/tinyimagenet_preact18_mixup_g02.py --workdir=W \
        --config.data_dir=TINY_ROOT

TINY_ROOT is the folder `launch/prepare_tiny_imagenet.py` writes from the official tiny-imagenet-200.zip
(TINY_ROOT/{train,val}/WNID/*.JPEG; see docs/tiny_imagenet.md). Tiny-ImageNet is not in TFDS core, so it loads
as `dataset='image_folder'`; the official test split has no labels, so we evaluate on `val` (10,000 images).
Standard augmentation at 64 px: zero-pad 4 + random 64×64 crop + flip, for both phases; eval on the
unaugmented 64 px images.

Schedule as the CIFAR PreActResNet-18 configs (`cifar10_preact18_mixup.py`: batch 128, lr 0.1 ÷10 at 150 and
275, wd 1e-4, 400 augmented + 50 refinement epochs at the final rate 0.001) — not read from the paper's
Tiny-ImageNet section, which we could not consult. `to_tinyimagenet` turns any PreActResNet-18 CIFAR config into
its Tiny-ImageNet version, so every Table 4 row is `to_tinyimagenet(<CIFAR config>)` plus its γ / p / policy.
Aim: the paper's Table 4 row for Tiny-ImageNet / PreActResNet-18 / Mixup γ = 0.2.
"""
from configs import cifar10_preact18_mixup

TINY_PP = 'pad_crop(64,4)|flip_lr'


def to_tinyimagenet(c):
  """A PreActResNet-18 CIFAR config → Tiny-ImageNet (image folder, 64 px; standard aug in every phase)."""
  c.dataset = 'image_folder'
  c.image_size = 64
  c.train_split, c.eval_split = 'train', 'val'
  c.pp_eval = ''
  for name in c.phase_order:
    c.phases[name].pp = TINY_PP
  return c


def get_config():
  c = to_tinyimagenet(cifar10_preact18_mixup.get_config())
  c.phases.augmented.mix.gamma = 0.2
  return c
