"""Config validation and step conversion: the bottom layer, importing no other room but `errors`.

Everything here is plain Python over a `ml_collections.ConfigDict`: it runs before any data is read or any
array is built, so a bad field stops the run before compute and before anything is written. What only the
registries above this layer know (dataset, model and op names) is asked through one `Registries` value.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Callable, Optional, Sequence

import ml_collections

from refine_jax.errors import ConfigError

PHASE_NAMES = ('augmented', 'refine')
MIX_KINDS = ('none', 'mixup', 'cutmix', 'manifold_mixup')
LR_SCHEDULES = ('multistep', 'cosine', 'constant', 'continue')
DTYPES = ('float32', 'bfloat16')


@dataclasses.dataclass(frozen=True)
class Registries:
  """What validation asks of the registries above this layer (`refine_jax.registries.default()` builds it)."""
  builtin_datasets: Sequence[str]             # `dataset` values known without asking (no TFDS import)
  datasets: Callable[[], Sequence[str]]       # all allowed `dataset` values (lists TFDS's builders)
  models: Sequence[str]                       # allowed `model` values
  mix_points: Callable[[str], Sequence[str]]  # a model's manifold-mixup points
  check_pp: Callable[[str, str], None]        # (spec, field): raises ConfigError for a bad op spec


def _get(node: Any, key: str, default=None):
  return node[key] if key in node else default


# --------------------------------------------------------------------------- step conversion


def steps_of(node: ml_collections.ConfigDict, key: str, steps_per_epoch: int, *, path: str,
             required: bool = False) -> Optional[int]:
  """The one place `*_epochs` / `*_steps` become steps.

  `key=''` reads `epochs`/`steps`; otherwise `{key}_epochs`/`{key}_steps`. None means unset; a set `*_steps`
  wins over `*_epochs`, so `--config.X_steps=N` overrides a config written in epochs. Fractional epochs round
  to the nearest step.
  """
  ek, sk = (f'{key}_epochs', f'{key}_steps') if key else ('epochs', 'steps')
  e, s = _get(node, ek), _get(node, sk)
  if e is None and s is None:
    if required:
      raise ConfigError(f'{path}.{ek}', f'one of {ek} / {sk} must be set')
    return None
  if s is not None:
    return int(s)
  return int(round(float(e) * steps_per_epoch))


def list_steps_of(node, key: str, steps_per_epoch: int, *, path: str) -> tuple[int, ...]:
  """Like `steps_of` for a tuple of boundaries (`{key}_epochs` or `{key}_steps`)."""
  ek, sk = f'{key}_epochs', f'{key}_steps'
  e, s = _get(node, ek), _get(node, sk)
  if s:
    return tuple(int(v) for v in s)
  return tuple(int(round(float(v) * steps_per_epoch)) for v in (e or ()))


# --------------------------------------------------------------------------- validation


def _check_type(path: str, value, types: tuple, what: str):
  bad_bool = isinstance(value, bool) and bool not in types
  if bad_bool or not isinstance(value, types):
    raise ConfigError(path, f'must be {what}, got {value!r}')


# Past this many allowed values an error names the close matches and how to list the rest, not every value.
_LONGEST_LISTING = 30


def _check_choice(path: str, value, allowed: Sequence[str], *, rest: str = ''):
  """`rest` describes the allowed values in words when there are too many to print (e.g. TFDS builders)."""
  if value in allowed:
    return
  names = [str(a) for a in allowed]
  if len(names) <= _LONGEST_LISTING:
    raise ConfigError(path, f'unknown value {value!r}; allowed: {", ".join(names)}')
  near = difflib.get_close_matches(str(value), names, n=5, cutoff=0.6)
  hint = f'did you mean {", ".join(near)}? ' if near else ''
  raise ConfigError(path, f'unknown value {value!r}; {hint}allowed: {rest or f"{len(names)} names"}')


def _check_range(path: str, value, lo=None, hi=None, *, lo_open=False, what='a number'):
  bounds = ' and '.join(b for b in (
      None if lo is None else f'{">" if lo_open else ">="} {lo}', None if hi is None else f'<= {hi}') if b)
  allowed = f'must be {what}' + (f' ({bounds})' if bounds and bounds not in what else '')
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(path, f'{allowed}, got {value!r}')
  if (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi):
    raise ConfigError(path, f'{allowed}, got {value!r}')


def _check_duration(node, key: str, path: str, *, required: bool, positive=True):
  ek, sk = (f'{key}_epochs', f'{key}_steps') if key else ('epochs', 'steps')
  e, s = _get(node, ek), _get(node, sk)
  if e is None and s is None and required:
    raise ConfigError(f'{path}{ek}', f'one of {ek} / {sk} must be set to a positive number')
  for k, v in ((ek, e), (sk, s)):
    if v is not None:
      _check_range(f'{path}{k}', v, 0, lo_open=positive, what='a positive number' if positive else 'a number >= 0')


def validate(config: ml_collections.ConfigDict, registries: Registries, *, num_devices: int = 1,
             process_count: int = 1) -> None:
  """Checks every field the trainer reads; raises ConfigError naming the field and the allowed values."""
  builtin = tuple(registries.builtin_datasets)
  if config.dataset not in builtin:
    datasets = registries.datasets()
    _check_choice('dataset', config.dataset, datasets,
                  rest=f'{", ".join(builtin)} or a TFDS builder name ({len(datasets) - len(builtin)} of them; '
                  "list them: python -c 'import tensorflow_datasets as tfds; print(tfds.list_builders())')")
  if config.dataset == 'synthetic':
    _check_synthetic(config)
  elif config.dataset != 'digits':
    if config.data_dir is None and not config.download:
      raise ConfigError('data_dir', f'dataset {config.dataset!r} needs data_dir (a TFDS data directory) '
                        'or download=True')
  for f in ('train_split', 'eval_split'):
    v = config[f]
    if not isinstance(v, str) or not re.fullmatch(r'[A-Za-z_]+(\[[^\]]*\])?', v):
      raise ConfigError(f, f'must be a TFDS split string such as "train" or "train[:2000]", got {v!r}')
  _check_choice('model', config.model, tuple(registries.models))
  _check_type('model_kwargs', config.model_kwargs, (dict, ml_collections.ConfigDict), 'a dict')
  _check_choice('dtype', config.dtype, DTYPES)
  if config.image_size is not None:
    _check_range('image_size', config.image_size, 8, 1024, what='an integer (or None: no check)')
    if not isinstance(config.image_size, int):
      raise ConfigError('image_size', f'must be an integer (or None: no check), got {config.image_size!r}')
  for f in ('batch_size', 'eval_batch_size'):
    _check_range(f, config[f], 1, what='a positive integer')
    if not isinstance(config[f], int):
      raise ConfigError(f, f'must be an integer, got {config[f]!r}')
    if config[f] % num_devices:
      raise ConfigError(f, f'{config[f]} is not divisible by the device count {num_devices}; '
                        f'allowed: multiples of {num_devices}')
    if config[f] % process_count:
      raise ConfigError(f, f'{config[f]} is not divisible by the process count {process_count}')
  _check_type('mesh_model', config.mesh_model, (int,), 'an integer')
  if config.mesh_model < 1 or num_devices % config.mesh_model:
    divisors = [d for d in range(1, num_devices + 1) if num_devices % d == 0]
    raise ConfigError('mesh_model', f'{config.mesh_model} does not divide the device count {num_devices}; '
                      f'allowed: {", ".join(map(str, divisors))}')
  _check_type('seed', config.seed, (int,), 'an integer')
  _check_range('label_smoothing', config.label_smoothing, 0, 1)
  if config.label_smoothing >= 1:
    raise ConfigError('label_smoothing', f'must be in [0, 1), got {config.label_smoothing}')
  _check_range('optimizer.momentum', config.optimizer.momentum, 0, 1)
  _check_range('optimizer.weight_decay', config.optimizer.weight_decay, 0)
  _check_type('optimizer.nesterov', config.optimizer.nesterov, (bool,), 'true or false')
  _check_range('diag_examples', config.diag_examples, 0, what='an integer >= 0')
  _check_phase_end_examples(_get(config, 'phase_end_diag_examples'))
  _check_duration(config, 'eval_every', '', required=False)
  _check_duration(config, 'checkpoint_every', '', required=False)
  _check_range('keep_checkpoints', config.keep_checkpoints, 1, what='an integer >= 1')
  _check_fork_points(config)
  _check_range('log_every_steps', config.log_every_steps, 1, what='an integer >= 1')
  depth = _get(config, 'prefetch_to_device', 2)
  if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 64:
    raise ConfigError('prefetch_to_device', f'must be an integer in [0, 64] (device batches made ready ahead of '
                      f'the step; 0 turns the prefetch thread off), got {depth!r}')
  _check_range('max_grad_norm', config.max_grad_norm, 0)
  _check_type('pp_eval', config.pp_eval, (str,), 'a preprocessing string')
  registries.check_pp(config.pp_eval, 'pp_eval')

  order = _phase_order(config)
  mix_points = registries.mix_points(config.model)
  for name in order:
    _validate_phase(config.phases[name], f'phases.{name}.', name, mix_points, config.model, registries,
                    first=name == order[0])
  _check_continue(config, order)


def _check_synthetic(config) -> None:
  """dataset 'synthetic': random images of `image_size` made on the host (benchmarks, no TensorFlow). Its sizes
  must be positive integers, and no spec may hold host ops: every host op runs in TensorFlow, which a synthetic
  run never imports. Checked before any op spec is parsed."""
  if config.image_size is None:
    raise ConfigError('image_size', "dataset 'synthetic' makes images of image_size x image_size pixels: set it "
                      '(an integer in [8, 1024], e.g. 224 or 32)')
  node = _get(config, 'synthetic')
  for k in ('num_classes', 'train_examples', 'eval_examples'):
    v = None if node is None else _get(node, k)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ConfigError(f'synthetic.{k}', f'must be a positive integer, got {v!r}')
  specs = [('pp_eval', config.pp_eval)] + [(f'phases.{n}.pp', config.phases[n].pp) for n in config.phase_order
                                           if n in config.phases]
  for field, spec in specs:
    if not isinstance(spec, str) or spec.strip():
      raise ConfigError(field, f"dataset 'synthetic' takes no host ops (every host op runs in TensorFlow, which a "
                        f"synthetic run never imports), got {spec!r}; allowed: '' (--config.{field}=)")


def _check_phase_end_examples(v) -> None:
  """phase_end_diag_examples: None (the whole training split), 0 (off) or a positive bound."""
  if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
    raise ConfigError('phase_end_diag_examples', f'must be None (the whole training split), 0 (off) or a '
                      f'positive integer (the first N training examples), got {v!r}')


def _check_fork_points(config) -> None:
  """fork_points_epochs / fork_points_steps: increasing positive numbers (the plan checks them against the
  run's length)."""
  for k in ('fork_points_epochs', 'fork_points_steps'):
    v = _get(config, k) or ()
    if isinstance(v, (str, bool, int, float)) or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                     for x in v):
      raise ConfigError(k, f'must be a tuple of numbers, got {v!r}')
    if list(v) != sorted(set(v)) or any(x <= 0 for x in v):
      raise ConfigError(k, f'must be strictly increasing positive numbers, got {tuple(v)}')
    if k == 'fork_points_steps' and any(not isinstance(x, int) for x in v):
      raise ConfigError(k, f'must be integers (steps), got {tuple(v)}')


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
      if _get(lr, k) is not None:
        raise ConfigError(f'{path}.{k}', f"must be unset with schedule 'continue' (the rate is the previous "
                          f'phase\'s schedule at each step), got {lr[k]!r}')
    for k in ('boundaries_epochs', 'boundaries_steps'):
      if _get(lr, k):
        raise ConfigError(f'{path}.{k}', f"must be empty with schedule 'continue' (the boundaries are the previous "
                          f'phase\'s, in global epochs), got {tuple(lr[k])}')


def _phase_order(config) -> tuple[str, ...]:
  """The validated `phase_order`."""
  order = tuple(config.phase_order)
  if not order:
    raise ConfigError('phase_order', f'must name at least one phase; allowed: {", ".join(PHASE_NAMES)}')
  for name in order:
    _check_choice('phase_order', name, PHASE_NAMES)
  if len(set(order)) != len(order):
    raise ConfigError('phase_order', f'a phase appears twice: {order}')
  if list(order) != sorted(order, key=PHASE_NAMES.index):
    raise ConfigError('phase_order', f'phases must come in the order {PHASE_NAMES}, got {order}')
  if 'augmented' not in order and not config.init_from:
    raise ConfigError('phase_order', 'a run without an augmented phase must start from a trained model: '
                      'set init_from, or add "augmented" (allowed phases: augmented, refine)')
  return order


def _validate_phase(p, path: str, name: str, mix_points: Sequence[str], model: str, registries: Registries, *,
                    first: bool):
  _check_duration(p, '', path, required=True)
  _check_type(f'{path}pp', p.pp, (str,), 'a preprocessing string')
  registries.check_pp(p.pp, f'{path}pp')
  _check_range(f'{path}aug_prob', p.aug_prob, 0, 1, what='a probability in [0, 1]')
  _check_duration(p, 'aug_prob_decay', path, required=False, positive=False)
  m = p.mix
  _check_choice(f'{path}mix.kind', m.kind, MIX_KINDS)
  _check_range(f'{path}mix.gamma', m.gamma, 0, what='a number >= 0 (the Beta(gamma, gamma) parameter)')
  _check_range(f'{path}mix.prob', m.prob, 0, 1, what='a probability in [0, 1]')
  _check_type(f'{path}mix.per_example', m.per_example, (bool,), 'true or false')
  _check_duration(m, 'decay', f'{path}mix.', required=False, positive=False)
  decay_of = _get(m, 'decay_of', ('gamma', 'prob'))
  if (isinstance(decay_of, str) or not decay_of or len(set(decay_of)) != len(decay_of)
      or not set(decay_of) <= {'gamma', 'prob'}):
    raise ConfigError(f'{path}mix.decay_of', f'must name what the mix decay fades, one or both of gamma, prob; '
                      f'got {decay_of!r}')
  if m.kind == 'manifold_mixup':
    if len(mix_points) < 2:
      raise ConfigError(f'{path}mix.kind', f'manifold_mixup needs a model with mixing layers; model {model!r} '
                        'has none')
    layers = tuple(m.layers)
    if not layers:
      raise ConfigError(f'{path}mix.layers', 'must list at least one layer index')
    for l in layers:
      if not isinstance(l, int) or not 0 <= l < len(mix_points):
        raise ConfigError(f'{path}mix.layers', f'layer {l!r} is not a mixing point of {model!r}; allowed: '
                          + ', '.join(f'{i} ({n})' for i, n in enumerate(mix_points)))
  lr = p.lr
  _check_choice(f'{path}lr.schedule', lr.schedule, LR_SCHEDULES)
  if lr.schedule == 'continue' and first:
    raise ConfigError(f'{path}lr.schedule', "'continue' needs a previous phase to continue; allowed for the "
                      'first phase: multistep, cosine, constant')
  if lr.base is None and (name == 'augmented' or first):
    raise ConfigError(f'{path}lr.base', 'must be set for the first phase (a positive learning rate)')
  if lr.base is not None:
    _check_range(f'{path}lr.base', lr.base, 0, lo_open=True, what='a positive learning rate')
  _check_range(f'{path}lr.factor', lr.factor, 0, 1, lo_open=True, what='a factor in (0, 1]')
  _check_duration(lr, 'warmup', f'{path}lr.', required=False, positive=False)
  b = _get(lr, 'boundaries_epochs') or _get(lr, 'boundaries_steps') or ()
  if list(b) != sorted(b) or any(v <= 0 for v in b):
    raise ConfigError(f'{path}lr.boundaries_epochs', f'must be increasing positive numbers, got {tuple(b)}')


def diff(a: dict, b: dict, prefix: str = '') -> list[tuple[str, Any, Any]]:
  """Fields that differ between two config dicts (for refusing a workdir that holds another run)."""
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k, '<missing>'), b.get(k, '<missing>')
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff(va, vb, f'{prefix}{k}.')
    elif va != vb:
      out.append((f'{prefix}{k}', va, vb))
  return out
