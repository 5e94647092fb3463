"""CIFAR-10, PreActResNet-18, Manifold Mixup (γ = 1; input, stage-1 or stage-2 output) then refinement.

    python -m refine_jax.main --config=configs/cifar10_preact18_manifold_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Paper (Table 1): 400 augmented + 50 refinement epochs, schedule as the Mixup config; refinement raises test
accuracy over Manifold Mixup alone.
"""
from configs import cifar10_preact18_mixup


def get_config():
  c = cifar10_preact18_mixup.get_config()
  c.phases.augmented.mix.kind = 'manifold_mixup'
  c.phases.augmented.mix.layers = (0, 1, 2)
  return c
