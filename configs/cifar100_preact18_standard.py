"""CIFAR-100, PreActResNet-18, standard augmentation only (pad 4 + crop 32 + flip): the paper's baseline row.

    python -m refine_jax.main --config=configs/cifar100_preact18_standard.py --workdir=W --config.data_dir=TFDS_DIR

A single phase of 450 epochs (the mixing configs' 400 + 50), lr 0.1 ÷10 at 150 and 275, wd 1e-4: the same
total budget as the refined runs, so the tables compare at equal epochs.
"""
from configs import cifar10_preact18_standard


def get_config():
  c = cifar10_preact18_standard.get_config()
  c.dataset = 'cifar100'
  return c
