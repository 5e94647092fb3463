"""CIFAR-10, PreActResNet-18, standard augmentation only (pad 4 + crop 32 + flip): the paper's baseline row.

    python -m refine_jax.main --config=configs/cifar10_preact18_standard.py --workdir=W --config.data_dir=TFDS_DIR

A single phase of 450 epochs (the mixing configs' 400 + 50), lr 0.1 ÷10 at 150 and 275, wd 1e-4: the same
total budget as the refined runs, so the tables compare at equal epochs.
"""
from configs import cifar10_preact18_mixup


def get_config():
  c = cifar10_preact18_mixup.get_config()
  c.phase_order = ('augmented',)
  c.phases.augmented.epochs = 450.0
  c.phases.augmented.mix.kind = 'none'
  return c
