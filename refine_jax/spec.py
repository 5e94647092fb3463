"""The run spec: a validated config as typed, frozen pieces, resolved once; the ConfigDict stops here.

`from_config(config, ...)` validates the ConfigDict (`config.validate`), fills the fields an older config lacks
with their declared defaults (`fields.complete`) and returns a `Spec`: data, model, optimizer, the phases (their
durations still in the epochs or steps the config gave), evaluation, checkpoints and the run's bookkeeping.
`plan.resolve(spec, ...)` turns it into steps. Below the plan no module takes a ConfigDict: sources take the
`DataSpec`, the step environment the `ModelSpec` and `OptimizerSpec`, the evaluator the `EvalSpec`, and so on.

Plain Python over ml_collections: no TensorFlow, no JAX.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional, Union

import ml_collections

from refine_jax import config as config_lib
from refine_jax import fields

Number = Union[int, float]


@dataclasses.dataclass(frozen=True)
class Duration:
  """A length the config gave in epochs or in steps (a tuple of them for boundaries and fork points); a set
  `steps` wins over `epochs`, so `--config.X_steps=N` overrides a config written in epochs."""
  epochs: Any = None
  steps: Any = None

  @property
  def is_set(self) -> bool:
    return self.steps not in (None, ()) or self.epochs not in (None, ())

  def to_steps(self, steps_per_epoch: int) -> Any:
    """The one conversion of epochs to steps: steps as given, else epochs × steps per epoch rounded to the
    nearest step (elementwise for a tuple); None (or () for a tuple) when unset."""
    if self.steps not in (None, ()):
      return tuple(int(s) for s in self.steps) if isinstance(self.steps, tuple) else int(self.steps)
    if isinstance(self.epochs, tuple):
      return tuple(int(round(float(e) * steps_per_epoch)) for e in self.epochs)
    return None if self.epochs is None else int(round(float(self.epochs) * steps_per_epoch))

  @property
  def given(self) -> tuple[str, Any]:
    """('steps', value) or ('epochs', value): what the config set, for messages."""
    return ('steps', self.steps) if self.steps not in (None, ()) else ('epochs', self.epochs)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  num_classes: int
  train_examples: int
  eval_examples: int


@dataclasses.dataclass(frozen=True)
class DataSpec:
  dataset: str
  data_dir: Optional[str]
  download: bool
  train_split: str
  eval_split: str
  image_size: Optional[int]
  skip_corrupt: bool
  synthetic: SyntheticSpec
  seed: int  # synthetic data is made from it

  def split(self, train: bool) -> str:
    return self.train_split if train else self.eval_split

  def split_field(self, train: bool) -> str:
    return 'train_split' if train else 'eval_split'


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  name: str
  kwargs: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs: hashable
  dtype: str


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  momentum: float
  nesterov: bool
  weight_decay: float
  max_grad_norm: float
  label_smoothing: float


@dataclasses.dataclass(frozen=True)
class MixSpec:
  kind: str
  gamma: float
  prob: float
  per_example: bool
  layers: tuple[int, ...]
  decay: Duration
  decay_of: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LrSpec:
  schedule: str
  base: Optional[float]
  boundaries: Duration
  factor: float
  warmup: Duration


@dataclasses.dataclass(frozen=True)
class PhaseSpec:
  name: str
  length: Duration
  pp: str
  aug_prob: float
  aug_prob_decay: Duration
  mix: MixSpec
  lr: LrSpec


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  every: Duration
  batch_size: int
  pp: str
  diag_examples: int
  phase_end_examples: Optional[int]  # None: the whole training split; 0: off


@dataclasses.dataclass(frozen=True)
class CheckpointSpec:
  every: Duration
  keep: int
  fork_points: Duration


@dataclasses.dataclass(frozen=True)
class Spec:
  data: DataSpec
  model: ModelSpec
  optimizer: OptimizerSpec
  phases: tuple[PhaseSpec, ...]
  eval: EvalSpec
  checkpoints: CheckpointSpec
  seed: int
  batch_size: int
  log_every: int
  prefetch: int
  init_from: Optional[str]
  allow_config_change: bool
  paper_row: Optional[str]
  record: str = dataclasses.field(repr=False)  # the completed config as JSON: config.json, and comparisons

  def as_dict(self) -> dict:
    """The completed config, as config.json holds it (sorted keys; records such as forked_from included)."""
    return json.loads(self.record)

  def phase(self, name: str) -> PhaseSpec:
    return next(p for p in self.phases if p.name == name)

  def readers(self, train: bool) -> tuple[tuple[str, str], ...]:
    """(field, host-op spec) of every preprocessing the run puts the training (`train`) or eval split through:
    each phase's pp and also pp_eval on the training split (the R̂ / R̂aug diagnostics and the phase-end Table 2
    run there), pp_eval on the eval split."""
    ev = (('pp_eval', self.eval.pp),)
    return tuple((f'phases.{p.name}.pp', p.pp) for p in self.phases) + ev if train else ev


def _duration(node, key: str) -> Duration:
  ek, sk = (f'{key}_epochs', f'{key}_steps') if key else ('epochs', 'steps')
  norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
  return Duration(norm(node.get(ek)), norm(node.get(sk)))


def _phase(name: str, p) -> PhaseSpec:
  m, lr = p['mix'], p['lr']
  return PhaseSpec(
      name=name, length=_duration(p, ''), pp=p['pp'], aug_prob=float(p['aug_prob']),
      aug_prob_decay=_duration(p, 'aug_prob_decay'),
      mix=MixSpec(kind=m['kind'], gamma=float(m['gamma']), prob=float(m['prob']), per_example=bool(m['per_example']),
                  layers=tuple(int(l) for l in m['layers']), decay=_duration(m, 'decay'),
                  decay_of=tuple(m['decay_of'])),
      lr=LrSpec(schedule=lr['schedule'], base=None if lr['base'] is None else float(lr['base']),
                boundaries=_duration(lr, 'boundaries'), factor=float(lr['factor']), warmup=_duration(lr, 'warmup')))


def from_dict(d: dict) -> Spec:
  """The Spec of a config dict (a config.json, completed with the declared defaults); not validated."""
  c = fields.complete(d)
  syn = c['synthetic']
  data = DataSpec(dataset=c['dataset'], data_dir=c['data_dir'], download=bool(c['download']),
                  train_split=c['train_split'], eval_split=c['eval_split'], image_size=c['image_size'],
                  skip_corrupt=bool(c['image_folder_skip_corrupt']), seed=int(c['seed']),
                  synthetic=SyntheticSpec(int(syn['num_classes']), int(syn['train_examples']),
                                          int(syn['eval_examples'])))
  model = ModelSpec(name=c['model'], kwargs=tuple(sorted(dict(c['model_kwargs'] or {}).items())), dtype=c['dtype'])
  o = c['optimizer']
  optimizer = OptimizerSpec(momentum=float(o['momentum']), nesterov=bool(o['nesterov']),
                            weight_decay=float(o['weight_decay']), max_grad_norm=float(c['max_grad_norm']),
                            label_smoothing=float(c['label_smoothing']))
  phases = tuple(_phase(name, c['phases'][name]) for name in c['phase_order'])
  ev = EvalSpec(every=_duration(c, 'eval_every'), batch_size=int(c['eval_batch_size']), pp=c['pp_eval'],
                diag_examples=int(c['diag_examples']), phase_end_examples=c['phase_end_diag_examples'])
  ck = CheckpointSpec(every=_duration(c, 'checkpoint_every'), keep=int(c['keep_checkpoints']),
                      fork_points=_duration(c, 'fork_points'))
  return Spec(data=data, model=model, optimizer=optimizer, phases=phases, eval=ev, checkpoints=ck,
              seed=int(c['seed']), batch_size=int(c['batch_size']), log_every=int(c['log_every_steps']),
              prefetch=int(c['prefetch_to_device']), init_from=c['init_from'],
              allow_config_change=bool(c['allow_config_change']), paper_row=c['paper_row'],
              record=json.dumps(c, sort_keys=True))


def as_dict(config: ml_collections.ConfigDict) -> dict:
  """A ConfigDict as config.json holds it (tuples as lists)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def from_config(config: ml_collections.ConfigDict, registries: config_lib.Registries, *, num_devices: int = 1,
                process_count: int = 1) -> Spec:
  """Validates `config` (ConfigError naming the field) and returns its Spec: the ConfigDict's last stop."""
  config_lib.validate(config, registries, num_devices=num_devices, process_count=process_count)
  return from_dict(as_dict(config))
