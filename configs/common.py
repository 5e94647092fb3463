"""The default config every experiment starts from; each config file imports it and changes a few fields.

Every field, its default, its check and its role are declared once in `refine_jax/fields.py`; this file builds
the experiments' starting point from those declarations. Durations are in epochs (`epochs`, `*_epochs`) or steps
(`steps`, `*_steps`); a set `*_steps` wins, so `--config.phases.refine.steps=100` overrides a duration written
in epochs.
"""
from __future__ import annotations

import ml_collections

from refine_jax import fields

CIFAR_PP = 'pad_crop(32,4)|flip_lr'
IMAGENET_PP = 'inception_crop(224)|flip_lr'  # decodes only the crop window of each JPEG
IMAGENET_PP_EVAL = 'decode|resize_small(256)|center_crop(224)'


def lr(schedule: str = 'multistep', base: float | None = 0.1, boundaries_epochs=(), factor: float = 0.1,
       warmup_epochs: float | None = None) -> ml_collections.ConfigDict:
  """A learning-rate schedule: multistep (×factor at each boundary), cosine, or constant.

  base=None (only after a first phase) continues at the previous phase's final rate.
  """
  return fields.phase_config('lr', schedule=schedule, base=base, boundaries_epochs=tuple(boundaries_epochs),
                             factor=factor, warmup_epochs=warmup_epochs)


def mix(kind: str = 'none', gamma: float = 1.0, prob: float = 1.0, layers=(0, 1, 2)) -> ml_collections.ConfigDict:
  """On-device mixing: kind none|mixup|cutmix|manifold_mixup, λ ~ Beta(gamma, gamma), applied with `prob`.

  decay_epochs/decay_steps: fall linearly to 0 over the end of the phase (the paper's gradual variant);
  decay_of names what falls: ('gamma',) for gradual Mixup (γ → 0, probability kept), ('prob',) for gradual
  CutMix (probability → 0, λ ~ Beta(γ, γ) kept), both by default.
  """
  return fields.phase_config('mix', kind=kind, gamma=gamma, prob=prob, layers=tuple(layers))


def phase(epochs: float | None, pp: str, mixing: ml_collections.ConfigDict,
          lr_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  p = fields.phase_config(epochs=None if epochs is None else float(epochs), pp=pp)
  p.mix, p.lr = mixing, lr_cfg
  return p


def get_config() -> ml_collections.ConfigDict:
  """Every field at its declared default; the phases: intensive augmentation (Mixup γ = 1 on standard CIFAR
  augmentation), then refinement on standard-augmented data at the augmented phase's final rate."""
  c = fields.default_config()
  c.phases = ml_collections.ConfigDict({
      'augmented': phase(None, CIFAR_PP, mix('mixup', 1.0), lr('multistep', 0.1)),
      'refine': phase(None, CIFAR_PP, mix('none'), lr('constant', None)),
  })
  return c
