"""CIFAR-100, PreActResNet-18, Manifold Mixup (γ = 1; input, stage-1 or stage-2 output) then refinement.

    python -m refine_jax.main --config=configs/cifar100_preact18_manifold_mixup.py --workdir=W --config.data_dir=TFDS_DIR

Paper (Table 1): 400 augmented + 50 refinement epochs, schedule as the Mixup config; refinement raises test
accuracy over Manifold Mixup alone.
"""
from configs import cifar10_preact18_manifold_mixup


def get_config():
  c = cifar10_preact18_manifold_mixup.get_config()
  c.dataset = 'cifar100'
  return c
