"""Every config field, declared once: its default, its check, its role and what it means.

`configs/common.py` builds the default ConfigDict from these declarations; `config.validate` runs each field's
check (plus the few checks that relate fields to each other or to the registries); resume, fork and report decide
from the roles which differences between two runs' configs matter (`differences`); `--help` lists the fields with
their docs; a config.json written before a field existed takes the field's default (`complete`).

A phase's fields are declared once for every phase (`PHASE_FIELDS`, under `phases.<name>.`). Standard library and
ml_collections only: this is the bottom layer, read before any data or array exists.
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import re
from typing import Any, Callable, Iterable, Optional, Sequence

import ml_collections
from ml_collections import config_dict

from refine_jax.errors import ConfigError

PHASE_NAMES = ('augmented', 'refine')
MIX_KINDS = ('none', 'mixup', 'cutmix', 'manifold_mixup')
LR_SCHEDULES = ('multistep', 'cosine', 'constant', 'continue')
DTYPES = ('float32', 'bfloat16')
MIX_DECAY_OF = ('gamma', 'prob')


class Role(enum.Enum):
  """What a field does to a run; resume, fork and report each decide from it (below)."""
  TRAINS = 'trains'            # changes what is trained: data, model, optimizer, phases
  MEASURES = 'measures'        # changes what is measured, not what is trained: evaluation
  SEED = 'seed'                # names the replicate: another seed is another run of the same experiment
  LABEL = 'label'              # names the experiment for people: the paper row
  BOOKKEEPING = 'bookkeeping'  # how the run is kept: log and checkpoint cadence, paths, threads


# What a resumed run, a fork and a report's grouping of seeds may let differ. A fork also compares the phases on
# the two resolved plans step by step (`fork.check_prefix`): what comes after its step may change.
RESUME_MAY_DIFFER = frozenset({Role.BOOKKEEPING, Role.LABEL})
FORK_MAY_DIFFER = frozenset({Role.BOOKKEEPING, Role.LABEL})
SAME_EXPERIMENT_MAY_DIFFER = frozenset({Role.BOOKKEEPING, Role.SEED})
# Recorded in config.json beside the fields (not fields: no one sets them): a fork's parent and step, and what the
# training data was (`sources.fingerprint`; a fork compares it with its parent's).
RECORDS = {'forked_from': Role.BOOKKEEPING, 'train_data': Role.BOOKKEEPING}

Check = Callable[[Any, str], None]  # (value, path) -> None; raises ConfigError naming `path`


# --------------------------------------------------------------------------- checks


def _names(values: Sequence) -> str:
  return ', '.join(str(v) for v in values)


def choice(allowed: Sequence[str]) -> Check:
  def check(v, path):
    if v not in allowed:
      near = difflib.get_close_matches(str(v), [str(a) for a in allowed], n=3, cutoff=0.6)
      hint = f'did you mean {_names(near)}? ' if near else ''
      raise ConfigError(path, f'unknown value {v!r}; {hint}allowed: {_names(allowed)}')
  return check


def number(lo=None, hi=None, *, lo_open: bool = False, integer: bool = False, optional: bool = False,
           what: str = '') -> Check:
  """A number in [lo, hi] ((lo, hi] with lo_open); an int with `integer`; None allowed with `optional`."""
  bounds = ' and '.join(b for b in (None if lo is None else f'{">" if lo_open else ">="} {lo}',
                                    None if hi is None else f'<= {hi}') if b)
  what = what or ('an integer' if integer else 'a number')
  what += f' ({bounds})' if bounds and bounds not in what else ''

  def check(v, path):
    if v is None and optional:
      return
    kinds = (int,) if integer else (int, float)
    if (isinstance(v, bool) or not isinstance(v, kinds) or (lo is not None and (v < lo or (lo_open and v == lo)))
        or (hi is not None and v > hi)):
      raise ConfigError(path, f'must be {what}, got {v!r}')
  return check


def of_type(types: tuple, what: str, *, optional: bool = False) -> Check:
  def check(v, path):
    if v is None and optional:
      return
    if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
      raise ConfigError(path, f'must be {what}, got {v!r}')
  return check


def split_string(v, path) -> None:
  if not isinstance(v, str) or not re.fullmatch(r'[A-Za-z_]+(\[[^\]]*\])?', v):
    raise ConfigError(path, f'must be a split string such as "train" or "train[:2000]", got {v!r}')


def increasing(*, positive: bool = True, integer: bool = False, strict: bool = False, what: str = '') -> Check:
  """A tuple of numbers, increasing (strictly with `strict`), each > 0 with `positive`."""
  def check(v, path):
    if isinstance(v, (str, bool, int, float)) or v is None or any(
        isinstance(x, bool) or not isinstance(x, int if integer else (int, float)) for x in v):
      raise ConfigError(path, f'must be a tuple of {"integers" if integer else "numbers"}, got {v!r}')
    v = tuple(v)
    order = sorted(set(v)) if strict else sorted(v)
    if list(v) != order or (positive and any(x <= 0 for x in v)):
      raise ConfigError(path, f'must be {what or ("strictly " if strict else "") + "increasing positive numbers"}'
                        f', got {v}')
  return check


def _decay_of(v, path) -> None:
  if isinstance(v, str) or not v or len(set(v)) != len(v) or not set(v) <= set(MIX_DECAY_OF):
    raise ConfigError(path, f'must name what the mix decay fades, one or both of {_names(MIX_DECAY_OF)}; got {v!r}')


def _phase_order(v, path) -> None:
  order = tuple(v) if isinstance(v, (tuple, list)) else v
  if not isinstance(order, tuple) or not order:
    raise ConfigError(path, f'must name at least one phase; allowed: {_names(PHASE_NAMES)}')
  for name in order:
    choice(PHASE_NAMES)(name, path)
  if len(set(order)) != len(order):
    raise ConfigError(path, f'a phase appears twice: {order}')
  if list(order) != sorted(order, key=PHASE_NAMES.index):
    raise ConfigError(path, f'phases must come in the order {PHASE_NAMES}, got {order}')


def _anything(v, path) -> None:
  pass


# --------------------------------------------------------------------------- declarations


@dataclasses.dataclass(frozen=True)
class Field:
  default: Any
  type: type            # the ConfigDict's type for the field (what a placeholder for None holds)
  role: Role
  check: Check
  doc: str


def _f(default, role: Role, check: Check, doc: str, type_: Optional[type] = None) -> Field:
  return Field(default, type_ or type(default), role, check, doc)


T, M, S, L, B = Role.TRAINS, Role.MEASURES, Role.SEED, Role.LABEL, Role.BOOKKEEPING
POSITIVE = number(0, lo_open=True, optional=True, what='a positive number (> 0), or None (unset)')
NON_NEGATIVE = number(0, optional=True, what='a number >= 0, or None (unset)')
POSITIVE_INT = number(1, integer=True, optional=True, what='a positive integer (>= 1), or None (unset)')
NON_NEGATIVE_INT = number(0, integer=True, optional=True, what='an integer >= 0, or None (unset)')

FIELDS: dict[str, Field] = {
    # Data.
    'dataset': _f('cifar10', T, _anything, 'digits, image_folder, synthetic or a TFDS builder name'),
    'data_dir': _f(None, B, of_type((str,), 'a directory path', optional=True),
                   'the TFDS data directory, or the image folder root', str),
    'download': _f(False, B, of_type((bool,), 'true or false'), 'let TFDS download and prepare the dataset'),
    'synthetic.num_classes': _f(10, T, number(1, integer=True, what='a positive integer'),
                                'synthetic: the class count of the random labels'),
    'synthetic.train_examples': _f(2048, T, number(1, integer=True, what='a positive integer'),
                                   'synthetic: the train split\'s size'),
    'synthetic.eval_examples': _f(512, M, number(1, integer=True, what='a positive integer'),
                                  'synthetic: the test / validation splits\' size'),
    'image_folder_skip_corrupt': _f(False, T, of_type((bool,), 'true or false'),
                                    'image_folder: skip and count unreadable files instead of refusing them'),
    'train_split': _f('train', T, split_string, 'the training split, e.g. train or train[:2000]'),
    'eval_split': _f('test', M, split_string, 'the evaluation split'),
    'image_size': _f(None, T, number(8, 1024, integer=True, optional=True,
                                     what='an integer in [8, 1024] (or None: no check)'),
                     'the side of the square images the model receives (checked before compute)', int),
    'pp_eval': _f('', M, of_type((str,), 'a preprocessing string'), 'host ops of evaluation and of R̂'),
    # Model and precision.
    'model': _f('preact_resnet18', T, _anything, 'the network, by registry name'),
    'model_kwargs': _f({}, T, of_type((dict, ml_collections.ConfigDict), 'a dict'),
                       "the network's extra arguments, e.g. {'width': 32}", dict),
    'dtype': _f('float32', T, choice(DTYPES), 'compute precision (parameters stay float32)'),
    # Optimisation.
    'batch_size': _f(128, T, number(1, integer=True, what='a positive integer'), 'the global batch size'),
    'eval_batch_size': _f(500, M, number(1, integer=True, what='a positive integer'), 'the global eval batch'),
    'seed': _f(0, S, of_type((int,), 'an integer'), 'the seed of everything random'),
    'label_smoothing': _f(0.0, T, number(0, 1), 'label smoothing, in [0, 1)'),
    'max_grad_norm': _f(0.0, T, number(0, what='a number >= 0 (0: no clipping)'), 'global-norm gradient clip'),
    'optimizer.momentum': _f(0.9, T, number(0, 1, what='a number in [0, 1]'), 'SGD momentum'),
    'optimizer.nesterov': _f(False, T, of_type((bool,), 'true or false'), 'Nesterov momentum'),
    'optimizer.weight_decay': _f(1e-4, T, number(0, what='a number >= 0'),
                                 'L2 weight decay added to the gradient (PyTorch\'s weight_decay)'),
    # Phases (each phase's own fields: PHASE_FIELDS).
    'phase_order': _f(PHASE_NAMES, T, _phase_order, 'the phases run, in order', tuple),
    # Evaluation and diagnostics.
    'eval_every_epochs': _f(1.0, M, POSITIVE, 'eval cadence, counted from each phase start', float),
    'eval_every_steps': _f(None, M, POSITIVE_INT, 'eval cadence in steps (wins over epochs)', int),
    'diag_examples': _f(2000, M, number(0, integer=True, what='an integer >= 0'),
                        'training examples of the R̂ / R̂aug diagnostics at each eval'),
    'phase_end_diag_examples': _f(None, M, number(0, integer=True, optional=True, what=(
        'None (the whole training split), 0 (off) or a positive integer (the first N training examples)')),
                                  "Table 2's R̂ / R̂aug at each phase end: None all, N the first N, 0 off", int),
    # Checkpoints, logs, threads.
    'checkpoint_every_epochs': _f(10.0, B, POSITIVE, 'checkpoint cadence (also at each phase end)', float),
    'checkpoint_every_steps': _f(None, B, POSITIVE_INT, 'checkpoint cadence in steps (wins over epochs)', int),
    'keep_checkpoints': _f(3, B, number(1, integer=True, what='an integer >= 1'),
                           'newest checkpoints kept (phase ends and fork points are kept too)'),
    'fork_points_epochs': _f((), B, increasing(strict=True), 'extra eval + kept-checkpoint points (epochs)', tuple),
    'fork_points_steps': _f((), B, increasing(strict=True, integer=True), 'the same in steps', tuple),
    'log_every_steps': _f(50, B, number(1, integer=True, what='an integer >= 1'), 'progress-line cadence'),
    'prefetch_to_device': _f(2, B, number(0, 64, integer=True, what=(
        'an integer in [0, 64] (device batches made ready ahead of the step; 0 turns the prefetch thread off)')),
                             'device batches made ready ahead of the step by a thread'),
    'init_from': _f(None, T, of_type((str,), 'a path', optional=True),
                    'start from another run\'s checkpoint or a torchvision ResNet file', str),
    'allow_config_change': _f(False, B, of_type((bool,), 'true or false'),
                              'resume although fields that change the run differ from the workdir\'s'),
    'paper_row': _f(None, L, of_type((str,), 'a key of refine_jax/paper.py ROWS', optional=True),
                    'the paper row this config reproduces (None: an extension)', str),
}

PHASE_FIELDS: dict[str, Field] = {
    'epochs': _f(None, T, POSITIVE, 'phase length in epochs', float),
    'steps': _f(None, T, POSITIVE_INT, 'phase length in steps (wins over epochs)', int),
    'pp': _f('', T, of_type((str,), 'a preprocessing string'), 'host ops, e.g. pad_crop(32,4)|flip_lr'),
    'aug_prob': _f(1.0, T, number(0, 1, what='a probability in [0, 1]'),
                   'probability of the AutoAugment / RandAugment / Cutout host ops'),
    'aug_prob_decay_epochs': _f(None, T, NON_NEGATIVE, 'aug_prob fades to 0 over the phase\'s last epochs', float),
    'aug_prob_decay_steps': _f(None, T, NON_NEGATIVE_INT, 'the same in steps', int),
    'mix.kind': _f('none', T, choice(MIX_KINDS), 'on-device mixing'),
    'mix.gamma': _f(1.0, T, number(0, what='a number >= 0 (the Beta(gamma, gamma) parameter)'), 'λ ~ Beta(γ, γ)'),
    'mix.prob': _f(1.0, T, number(0, 1, what='a probability in [0, 1]'), 'probability a batch is mixed'),
    'mix.per_example': _f(False, T, of_type((bool,), 'true or false'), 'one λ per example (extension)'),
    'mix.layers': _f((0, 1, 2), T, increasing(positive=False, integer=True, what='layer indices'),
                     'manifold mixup: eligible mixing points', tuple),
    'mix.decay_epochs': _f(None, T, NON_NEGATIVE, 'mixing fades to 0 over the phase\'s last epochs', float),
    'mix.decay_steps': _f(None, T, NON_NEGATIVE_INT, 'the same in steps', int),
    'mix.decay_of': _f(MIX_DECAY_OF, T, _decay_of, 'what the decay fades: gamma, prob or both', tuple),
    'lr.schedule': _f('multistep', T, choice(LR_SCHEDULES), 'learning-rate schedule'),
    'lr.base': _f(0.1, T, number(0, lo_open=True, optional=True, what='a positive learning rate'),
                  'initial rate (unset after the first phase: the previous phase\'s final rate)', float),
    'lr.boundaries_epochs': _f((), T, increasing(), 'multistep boundaries, epochs from the phase start', tuple),
    'lr.boundaries_steps': _f((), T, increasing(integer=True), 'the same in steps', tuple),
    'lr.factor': _f(0.1, T, number(0, 1, lo_open=True, what='a factor in (0, 1]'), 'multistep factor'),
    'lr.warmup_epochs': _f(None, T, NON_NEGATIVE, 'linear warm-up epochs', float),
    'lr.warmup_steps': _f(None, T, NON_NEGATIVE_INT, 'the same in steps', int),
}


def phase_field(path: str) -> Optional[str]:
  """'mix.gamma' for 'phases.refine.mix.gamma'; None for a path outside the phases."""
  parts = path.split('.')
  return '.'.join(parts[2:]) if len(parts) > 2 and parts[0] == 'phases' else None


def field(path: str) -> Optional[Field]:
  """The declaration of a (flattened) path, phases included; None for an undeclared path."""
  sub = phase_field(path)
  return PHASE_FIELDS.get(sub) if sub is not None else FIELDS.get(path)


def role(path: str) -> Role:
  """A path's role; an undeclared one (a record, or a field a newer version removed) counts as bookkeeping."""
  f = field(path)
  return f.role if f is not None else RECORDS.get(path.split('.')[0], Role.BOOKKEEPING)


def names_with(roles: Iterable[Role]) -> list[str]:
  """The top-level fields and records whose role is one of `roles` (a phase's fields are all Role.TRAINS)."""
  roles = frozenset(roles)
  top = {k.split('.')[0]: f.role for k, f in FIELDS.items()} | RECORDS
  return sorted(k for k, r in top.items() if r in roles)


# --------------------------------------------------------------------------- building and completing configs


def _value(f: Field, value):
  if value is None:
    return config_dict.placeholder(f.type)
  if f.type is dict:
    return ml_collections.ConfigDict(dict(value))
  return tuple(value) if f.type is tuple else value


def _nest(flat: dict) -> ml_collections.ConfigDict:
  out = ml_collections.ConfigDict()
  for path, v in flat.items():
    node, *head = out, *path.split('.')[:-1]
    for k in head:
      if k not in node:
        node[k] = ml_collections.ConfigDict()
      node = node[k]
    node[path.split('.')[-1]] = v
  return out


def phase_config(group: str = '', **overrides) -> ml_collections.ConfigDict:
  """A phase's ConfigDict from PHASE_FIELDS' defaults, or one group of it ('mix', 'lr'); `overrides` by name
  inside the group."""
  prefix = f'{group}.' if group else ''
  values = {k[len(prefix):]: overrides.pop(k[len(prefix):], f.default) for k, f in PHASE_FIELDS.items()
            if k.startswith(prefix) and ('.' not in k[len(prefix):] or not group)}
  if overrides:
    raise TypeError(f'not fields of phases.*.{prefix}: {sorted(overrides)}')
  return _nest({k: _value(PHASE_FIELDS[prefix + k], v) for k, v in values.items()})


def default_config() -> ml_collections.ConfigDict:
  """Every field at its default; the phases at PHASE_FIELDS' defaults (a config sets their lengths and ops)."""
  c = _nest({k: _value(f, f.default) for k, f in FIELDS.items()})
  c.phases = ml_collections.ConfigDict({name: phase_config() for name in PHASE_NAMES})
  return c


def flatten(d: dict, prefix: str = '') -> dict:
  """{'a.b': v} of a nested dict (a ConfigDict's to_dict(), a config.json)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and (f'{prefix}{k}' not in FIELDS or FIELDS[f'{prefix}{k}'].type is not dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def complete(d: dict) -> dict:
  """A config dict (config.json) with every declared field it lacks at its default: the fields a newer version
  added, so an older workdir's config reads as the run it was (those fields did not exist: the default is what
  the older code did). Phases get PHASE_FIELDS' defaults for what they lack."""
  flat = flatten(d)
  for k, f in FIELDS.items():
    flat.setdefault(k, f.default)
  for name in {p.split('.')[1] for p in flat if p.startswith('phases.')} | set(flat['phase_order']):
    for k, f in PHASE_FIELDS.items():
      flat.setdefault(f'phases.{name}.{k}', f.default)
  return _unflatten(flat)


def _unflatten(flat: dict) -> dict:
  out: dict = {}
  for path, v in flat.items():
    node = out
    *head, last = path.split('.') if path not in FIELDS or FIELDS[path].type is not dict else (path,)
    for k in head:
      node = node.setdefault(k, {})
    node[last] = list(v) if isinstance(v, tuple) else v
  return out


# --------------------------------------------------------------------------- comparing configs


def differences(a: dict, b: dict, may_differ: Iterable[Role]) -> list[tuple[str, Any, Any]]:
  """(path, value in a, value in b) for every field whose role is not in `may_differ` and whose values differ;
  both dicts first `complete`d, so a field one of them lacks is compared at its default. JSON round trips turn
  tuples into lists: compared as equal."""
  may = frozenset(may_differ)
  fa, fb = flatten(complete(a)), flatten(complete(b))
  out = []
  for k in sorted(fa.keys() | fb.keys()):
    va, vb = plain(fa.get(k, '<missing>')), plain(fb.get(k, '<missing>'))
    if va != vb and role(k) not in may:
      out.append((k, va, vb))
  return out


def plain(v):
  """A value as JSON holds it (tuples as lists), to compare a ConfigDict's with a config.json's."""
  if isinstance(v, (tuple, list)):
    return [plain(x) for x in v]
  if isinstance(v, dict):
    return {k: plain(x) for k, x in v.items()}
  return v
