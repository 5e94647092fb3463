"""Model registry: the trainer builds every network by name through ``get_model``.

Every model is called as ``model(x, train, hook=None)`` on float NHWC input and returns
float32 logits; ``hook(h, i)`` is applied to the activation at Manifold-Mixup point i, whose
names ``mix_points(name)`` lists (index 0 is always the input).

The registry names each model's module and class; a model's module (and Flax, and JAX) is imported
when the model is first asked for, so the names can be checked before any of them is imported.
"""

import dataclasses
import importlib
from typing import Any

# name -> (module of this package, class)
MODELS: dict[str, tuple[str, str]] = {
  'preact_resnet18': ('preact_resnet', 'PreActResNet18'),
  'resnet_tiny': ('preact_resnet', 'ResNetTiny'),
  'wide_resnet28_10': ('wide_resnet', 'WideResNet'),
  'shake_shake26_2x96d': ('shake_shake', 'ShakeShake'),
  'resnet50': ('resnet', 'ResNet50'),
  'resnet101': ('resnet', 'ResNet101'),
}

# Dataclass fields that get_model sets itself or that Linen reserves.
_NOT_KWARGS = frozenset({'num_classes', 'dtype', 'parent', 'name'})


def _model_class(name: str):
  if name not in MODELS:
    raise ValueError(f'model: unknown value {name!r}; allowed: ' + ', '.join(sorted(MODELS)))
  module, cls = MODELS[name]
  return getattr(importlib.import_module(f'{__name__}.{module}'), cls)


def model_kwargs(name: str) -> tuple[str, ...]:
  """The extra keyword arguments ``get_model`` accepts for this model."""
  return tuple(f.name for f in dataclasses.fields(_model_class(name)) if f.name not in _NOT_KWARGS)


def get_model(name: str, num_classes: int, dtype: Any = None, **kwargs: Any):
  """Build a registered model (float32 compute by default); unknown names or kwargs fail loudly rather than being
  ignored."""
  import jax.numpy as jnp
  allowed = model_kwargs(name)
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(f'model {name!r}: unknown kwarg(s) ' + ', '.join(unknown)
                     + '; allowed: ' + (', '.join(allowed) or '(none)'))
  return _model_class(name)(num_classes=num_classes, dtype=jnp.float32 if dtype is None else dtype, **kwargs)


def mix_points(name: str) -> tuple[str, ...]:
  """Names of the model's Manifold-Mixup points, in hook-index order."""
  return _model_class(name).MIX_POINTS


__all__ = ['MODELS', 'get_model', 'mix_points', 'model_kwargs']
