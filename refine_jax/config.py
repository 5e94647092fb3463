"""Config validation: the bottom layer, importing no other room but `errors` and `fields`.

Each field's own check is declared with it (`fields.FIELDS`, `fields.PHASE_FIELDS`); `validate` runs them and
the checks that relate fields to each other or to the registries above this layer (dataset, model and op names),
which it asks through one `Registries` value. Everything here is plain Python over a `ml_collections.ConfigDict`:
it runs before any data is read or any array is built, so a bad field stops the run before compute and before
anything is written.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Optional, Sequence

import ml_collections

from refine_jax import fields
from refine_jax.errors import ConfigError
from refine_jax.fields import PHASE_NAMES


@dataclasses.dataclass(frozen=True)
class Registries:
  """What validation asks of the registries above this layer (`refine_jax.registries.default()` builds it)."""
  builtin_datasets: Sequence[str]             # `dataset` values known without asking (no TFDS import)
  datasets: Optional[Callable[[], Sequence[str]]]       # all allowed `dataset` values (lists TFDS's builders)
  models: Sequence[str]                       # allowed `model` values
  mix_points: Optional[Callable[[str], Sequence[str]]]  # a model's manifold-mixup points
  check_pp: Callable[[str, str], None]        # (spec, field): raises ConfigError for a bad op spec
  # None for `datasets` / `mix_points`: not asked (`registries.light()`, before the heavy imports)


# Past this many allowed values an error names the close matches and how to list the rest, not every value.
_LONGEST_LISTING = 30


def _check_choice(path: str, value, allowed: Sequence[str], *, rest: str = ''):
  """`rest` describes the allowed values in words when there are too many to print (e.g. TFDS builders)."""
  if len([str(a) for a in allowed]) <= _LONGEST_LISTING:
    return fields.choice(allowed)(value, path)
  if value in allowed:
    return
  near = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=5, cutoff=0.6)
  hint = f'did you mean {", ".join(near)}? ' if near else ''
  raise ConfigError(path, f'unknown value {value!r}; {hint}allowed: {rest or f"{len(allowed)} names"}')


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Each declared field's own check, in declaration order; a field no declaration knows is refused."""
  flat = fields.flatten(config.to_dict())
  for path, value in flat.items():
    f = fields.field(path)
    if f is None:
      if path.split('.')[0] in fields.RECORDS:
        continue
      near = difflib.get_close_matches(path, [*fields.FIELDS, *(f'phases.{p}.{k}' for p in PHASE_NAMES
                                                                for k in fields.PHASE_FIELDS)], n=3, cutoff=0.6)
      raise ConfigError(path, 'is not a config field' + (f'; did you mean {", ".join(near)}?' if near else ''))
    f.check(value, path)


def validate(config: ml_collections.ConfigDict, registries: Registries, *, num_devices: int = 1,
             process_count: int = 1) -> None:
  """Checks every field the trainer reads; raises ConfigError naming the field and the allowed values."""
  check_fields(config)
  builtin = tuple(registries.builtin_datasets)
  if config.dataset not in builtin and registries.datasets is not None:
    datasets = registries.datasets()
    _check_choice('dataset', config.dataset, datasets,
                  rest=f'{", ".join(builtin)} or a TFDS builder name ({len(datasets) - len(builtin)} of them; '
                  "list them: python -c 'import tensorflow_datasets as tfds; print(tfds.list_builders())')")
  name_known = config.dataset in builtin or registries.datasets is not None  # else asked after the heavy imports
  if config.dataset == 'synthetic':
    _check_synthetic(config)
  elif config.dataset != 'digits' and name_known and config.data_dir is None and not config.download:
    raise ConfigError('data_dir', f'dataset {config.dataset!r} needs data_dir (a TFDS data directory) '
                      'or download=True')
  _check_choice('model', config.model, tuple(registries.models))
  for f in ('batch_size', 'eval_batch_size'):
    if config[f] % num_devices:
      raise ConfigError(f, f'{config[f]} is not divisible by the device count {num_devices}; '
                        f'allowed: multiples of {num_devices}')
    if config[f] % process_count:
      raise ConfigError(f, f'{config[f]} is not divisible by the process count {process_count}')
  if config.label_smoothing >= 1:
    raise ConfigError('label_smoothing', f'must be in [0, 1), got {config.label_smoothing}')
  registries.check_pp(config.pp_eval, 'pp_eval')
  order = tuple(config.phase_order)
  if 'augmented' not in order and not config.init_from:
    raise ConfigError('phase_order', 'a run without an augmented phase must start from a trained model: '
                      'set init_from, or add "augmented" (allowed phases: augmented, refine)')
  mix_points = registries.mix_points(config.model) if registries.mix_points else None
  for name in order:
    _validate_phase(config.phases[name], f'phases.{name}', name, mix_points, config.model, registries,
                    first=name == order[0])
  _check_continue(config, order)


def _check_synthetic(config) -> None:
  """dataset 'synthetic': random images of `image_size` made on the host (benchmarks, no TensorFlow). No spec may
  hold host ops: every host op runs in TensorFlow, which a synthetic run never imports. Checked before any op
  spec is parsed."""
  if config.image_size is None:
    raise ConfigError('image_size', "dataset 'synthetic' makes images of image_size x image_size pixels: set it "
                      '(an integer in [8, 1024], e.g. 224 or 32)')
  specs = [('pp_eval', config.pp_eval)] + [(f'phases.{n}.pp', config.phases[n].pp) for n in config.phase_order]
  for field, spec in specs:
    if spec.strip():
      raise ConfigError(field, f"dataset 'synthetic' takes no host ops (every host op runs in TensorFlow, which a "
                        f"synthetic run never imports), got {spec!r}; allowed: '' (--config.{field}=)")


def _validate_phase(p, path: str, name: str, mix_points: Optional[Sequence[str]], model: str,
                    registries: Registries, *, first: bool):
  if p.get('epochs') is None and p.get('steps') is None:
    raise ConfigError(f'{path}.epochs', 'one of epochs / steps must be set to a positive number')
  registries.check_pp(p.pp, f'{path}.pp')
  if p.mix.kind == 'manifold_mixup' and mix_points is not None:
    if len(mix_points) < 2:
      raise ConfigError(f'{path}.mix.kind', f'manifold_mixup needs a model with mixing layers; model {model!r} '
                        'has none')
    layers = tuple(p.mix.layers)
    if not layers:
      raise ConfigError(f'{path}.mix.layers', 'must list at least one layer index')
    for l in layers:
      if not 0 <= l < len(mix_points):
        raise ConfigError(f'{path}.mix.layers', f'layer {l!r} is not a mixing point of {model!r}; allowed: '
                          + ', '.join(f'{i} ({n})' for i, n in enumerate(mix_points)))
  lr = p.lr
  if lr.schedule == 'continue' and first:
    raise ConfigError(f'{path}.lr.schedule', "'continue' needs a previous phase to continue; allowed for the "
                      'first phase: multistep, cosine, constant')
  if lr.base is None and (name == 'augmented' or first) and lr.schedule != 'continue':
    raise ConfigError(f'{path}.lr.base', 'must be set for the first phase (a positive learning rate)')


def _check_continue(config, order: Sequence[str]) -> None:
  """lr.schedule 'continue': the phase keeps the previous phase's step schedule, over global steps (its
  boundaries stay where they were in the run: Figure 4's ÷10 at epochs 150 and 275 of the whole run)."""
  for prev, name in zip(order, order[1:]):
    lr, path = config.phases[name].lr, f'phases.{name}.lr'
    if lr.schedule != 'continue':
      continue
    before = config.phases[prev].lr.schedule
    if before not in ('multistep', 'constant'):
      raise ConfigError(f'{path}.schedule', f"'continue' extends the previous phase's step schedule; phase "
                        f"{prev!r} has {before!r} (allowed before it: multistep, constant)")
    for k in ('base', 'warmup_epochs', 'warmup_steps'):
      if lr.get(k) is not None:
        raise ConfigError(f'{path}.{k}', f"must be unset with schedule 'continue' (the rate is the previous "
                          f'phase\'s schedule at each step), got {lr[k]!r}')
    for k in ('boundaries_epochs', 'boundaries_steps'):
      if lr.get(k):
        raise ConfigError(f'{path}.{k}', f"must be empty with schedule 'continue' (the boundaries are the previous "
                          f'phase\'s, in global epochs), got {tuple(lr[k])}')


def diff(a: dict, b: dict, prefix: str = '') -> list[tuple[str, Any, Any]]:
  """Fields that differ between two config dicts, as given (no roles, no defaults: `fields.differences` decides
  which differences matter to a resume, a fork or a report)."""
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k, '<missing>'), b.get(k, '<missing>')
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff(va, vb, f'{prefix}{k}.')
    elif va != vb:
      out.append((f'{prefix}{k}', va, vb))
  return out
