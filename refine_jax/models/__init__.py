"""Model registry: the trainer builds every network by name through ``get_model``.

Every model is called as ``model(x, train, hook=None)`` on float NHWC input and returns
float32 logits; ``hook(h, i)`` is applied to the activation at Manifold-Mixup point i, whose
names ``mix_points(name)`` lists (index 0 is always the input).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from .preact_resnet import PreActResNet18, ResNetTiny
from .resnet import ResNet50, ResNet101
from .shake_shake import ShakeShake
from .wide_resnet import WideResNet

MODELS: dict[str, type[nn.Module]] = {
  'preact_resnet18': PreActResNet18,
  'resnet_tiny': ResNetTiny,
  'wide_resnet28_10': WideResNet,
  'shake_shake26_2x96d': ShakeShake,
  'resnet50': ResNet50,
  'resnet101': ResNet101,
}

# Dataclass fields that get_model sets itself or that Linen reserves.
_NOT_KWARGS = frozenset({'num_classes', 'dtype', 'parent', 'name'})


def _model_class(name: str) -> type[nn.Module]:
  if name not in MODELS:
    raise ValueError(f'model: unknown value {name!r}; allowed: ' + ', '.join(sorted(MODELS)))
  return MODELS[name]


def model_kwargs(name: str) -> tuple[str, ...]:
  """The extra keyword arguments ``get_model`` accepts for this model."""
  return tuple(f.name for f in dataclasses.fields(_model_class(name)) if f.name not in _NOT_KWARGS)


def get_model(name: str, num_classes: int, dtype: Any = jnp.float32, **kwargs: Any) -> nn.Module:
  """Build a registered model; unknown names or kwargs fail loudly rather than being ignored."""
  allowed = model_kwargs(name)
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(f'model {name!r}: unknown kwarg(s) ' + ', '.join(unknown)
                     + '; allowed: ' + (', '.join(allowed) or '(none)'))
  return MODELS[name](num_classes=num_classes, dtype=dtype, **kwargs)


def mix_points(name: str) -> tuple[str, ...]:
  """Names of the model's Manifold-Mixup points, in hook-index order."""
  return _model_class(name).MIX_POINTS


__all__ = ['MODELS', 'get_model', 'mix_points', 'model_kwargs']
