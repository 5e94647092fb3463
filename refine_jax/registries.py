"""The registries validation asks about (datasets, models, host ops), as one `config.Registries` value.

It sits above `config`, `models` and `data`, so `config` stays the bottom layer and imports none of them. Building
it imports no TensorFlow: TFDS's builder names are listed, and op specs built, only for a config that needs them.
"""
from __future__ import annotations

from refine_jax import config as config_lib
from refine_jax import models
from refine_jax.data import ops, sources


def default() -> config_lib.Registries:
  """Everything: TFDS's builder names (for other datasets), each model's mixing points, each op spec built."""
  return config_lib.Registries(builtin_datasets=sources.BUILTIN_DATASETS, datasets=sources.dataset_names,
                               models=tuple(models.MODELS), mix_points=models.mix_points, check_pp=ops.validate_spec)


def light() -> config_lib.Registries:
  """What is known without importing TensorFlow, TFDS, Flax or JAX: the built-in dataset names, the model names,
  each op spec parsed and its arguments bound to the op's signature. Validation with it runs in a moment, before
  the heavy imports; `default()` then checks the rest (TFDS names, mixing points, each op built)."""
  return config_lib.Registries(builtin_datasets=sources.BUILTIN_DATASETS, datasets=None, models=tuple(models.MODELS),
                               mix_points=None, check_pp=ops.parse_spec)
