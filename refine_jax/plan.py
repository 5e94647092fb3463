"""The run plan: everything the loop needs to know about a run, resolved once from a validated config.

Steps per epoch, the total, the eval / checkpoint / log steps and, per phase, its span, its on-device mixing
(`MixSpec`), its host-op pipeline by augmentation probability and its schedules. Training, preview, analysis
and the benchmarks read these here; nothing downstream re-derives them from the ConfigDict.

This module imports no TensorFlow: the host-op compiler is handed in (`build_ops`, normally
`refine_jax.data.ops.build`), so a device-only process (a benchmark on an accelerator machine without
TensorFlow) can resolve a plan too.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import ml_collections
from absl import logging

from refine_jax import config as config_lib
from refine_jax import schedules
from refine_jax.augment import mixing

# spec, augmentation probability, field (for errors) -> a host pipeline (`data.ops.Pipeline`)
BuildOps = Callable[[str, float, str], Any]
# The training loss is checked for finiteness at least this often (and at every log / eval / save step), so a
# divergence stops the run at most this many steps after the step that produced it, whatever log_every_steps is.
LOSS_CHECK_EVERY = 100
MIX_DECAY_DEFAULT = ('gamma', 'prob')  # what the mix decay fades when a config has no `mix.decay_of`


@dataclasses.dataclass(frozen=True)
class Phase:
  """One phase of a run: global steps [start, end) and what varies inside it."""
  name: str
  index: int
  start: int
  end: int
  pp: str                                  # the host-op spec
  mix: mixing.MixSpec
  lr: schedules.Schedule                   # each a function of the global step, valid inside [start, end)
  mix_gamma: schedules.Schedule
  mix_prob: schedules.Schedule
  aug_prob: schedules.Schedule
  host_ops: Callable[[float], Any] = dataclasses.field(repr=False, compare=False)  # by aug probability

  @property
  def num_steps(self) -> int:
    return self.end - self.start


@dataclasses.dataclass(frozen=True)
class Events:
  """What happens after a step: the one place log / eval / save decisions are made."""
  log: bool
  eval: bool
  save: bool
  check_loss: bool = False  # the pending training losses are checked (at least every LOSS_CHECK_EVERY steps)

  @property
  def sync(self) -> bool:
    """A point every process reaches together (to agree on a stop signal)."""
    return self.log or self.eval or self.save


@dataclasses.dataclass(frozen=True)
class Plan:
  steps_per_epoch: int
  phases: tuple[Phase, ...]
  eval_steps: frozenset[int]
  save_steps: frozenset[int]
  keep_steps: frozenset[int]               # checkpoints kept past `keep_checkpoints`: phase ends, fork points
  log_every: int
  seed: int
  lr: schedules.Schedule                   # the whole run's, phase by phase
  mix_gamma: schedules.Schedule
  mix_prob: schedules.Schedule
  aug_prob: schedules.Schedule
  eval_ops: Callable[[], Any] = dataclasses.field(repr=False, compare=False)  # the `pp_eval` pipeline

  @property
  def total_steps(self) -> int:
    return self.phases[-1].end

  def phase_at(self, step: int) -> Phase:
    """The phase that trains global step `step` (the last phase for step == total)."""
    for p in self.phases:
      if step < p.end:
        return p
    return self.phases[-1]

  def events(self, step: int) -> Events:
    """What to do once the model has trained `step` steps."""
    e = Events(log=step % self.log_every == 0, eval=step in self.eval_steps, save=step in self.save_steps)
    return dataclasses.replace(e, check_loss=e.sync or step % LOSS_CHECK_EVERY == 0)


def _no_ops(*_):
  raise RuntimeError('this plan was resolved without a host-op compiler (build_ops=None)')


def _spans(config, spe: int) -> list[tuple[str, int, int]]:
  out, start = [], 0
  for name in config.phase_order:
    node = config.phases[name]
    n = config_lib.steps_of(node, '', spe, path=f'phases.{name}', required=True)
    if n < 1:
      key = 'steps' if node.get('steps') is not None else 'epochs'
      raise config_lib.ConfigError(f'phases.{name}.{key}', f'{node[key]} rounds to 0 steps at {spe} steps per '
                                   f'epoch; allowed: at least {1 / spe:.3g} epochs (1 step)')
    out.append((name, start, start + n))
    start += n
  return out


def _phase(config, i: int, name: str, start: int, end: int, lr_base: float, spe: int,
           build_ops: Optional[BuildOps], prev: Optional[Phase] = None) -> Phase:
  p, path = config.phases[name], f'phases.{name}'
  m, lr = p.mix, p.lr
  # The mix decay fades what `mix.decay_of` names: γ (gradual Mixup), the probability (gradual CutMix), or both.
  decay = config_lib.steps_of(m, 'decay', spe, path=f'{path}.mix') or 0
  decay_of = tuple(m.decay_of) if 'decay_of' in m else MIX_DECAY_DEFAULT
  gamma_decay, prob_decay = (decay if what in decay_of else 0 for what in ('gamma', 'prob'))
  mixes = m.kind != 'none'
  if lr.schedule == 'continue':  # the previous phase's step schedule over global steps (validated: a step one)
    lr_fn = prev.lr
  else:
    boundaries = config_lib.list_steps_of(lr, 'boundaries', spe, path=f'{path}.lr')
    _warn_outside(f'{path}.lr', lr.schedule, boundaries, end - start)
    lr_fn = schedules.phase_lr(start, end - start, lr.schedule, float(lr_base), factor=lr.factor,
                               warmup=config_lib.steps_of(lr, 'warmup', spe, path=f'{path}.lr') or 0,
                               boundaries=boundaries)
  aug_decay = config_lib.steps_of(p, 'aug_prob_decay', spe, path=path) or 0
  host_ops = (functools.lru_cache(maxsize=None)(functools.partial(build_ops, p.pp, field=f'{path}.pp'))
              if build_ops else _no_ops)
  return Phase(name=name, index=i, start=start, end=end, pp=p.pp,
               mix=mixing.MixSpec(kind=m.kind, per_example=bool(m.per_example),
                                  layers=tuple(int(l) for l in m.layers)),
               lr=lr_fn, mix_gamma=schedules.decaying(end, m.gamma if mixes else 0.0, gamma_decay),
               mix_prob=schedules.decaying(end, m.prob if mixes else 0.0, prob_decay),
               aug_prob=schedules.decaying(end, p.aug_prob, aug_decay), host_ops=host_ops)


def _warn_outside(path: str, kind: str, boundaries: tuple[int, ...], num_steps: int) -> None:
  """A warning (not an error: a shortened test run may keep the full run's boundaries) for multistep lr
  boundaries at or past the phase's end, which never lower the rate."""
  late = [b for b in boundaries if b >= num_steps]
  if kind == 'multistep' and late:
    logging.warning('%s.boundaries: %s of %s (steps from the phase start) fall at or past the phase\'s end '
                    '(%d steps) and never lower the learning rate', path, late, boundaries, num_steps)


def _fork_points(config, spe: int, total: int) -> frozenset[int]:
  """`fork_points_epochs` / `_steps` as global steps, each inside (0, total]."""
  key = 'fork_points_steps' if config.get('fork_points_steps') else 'fork_points_epochs'
  points = config_lib.list_steps_of(config, 'fork_points', spe, path='')
  for v, k in zip(config.get(key, ()), points):
    if not 0 < k <= total:
      raise config_lib.ConfigError(key, f'{v} is step {k}, outside the run\'s steps (0, {total}] '
                                   f'(epochs (0, {total / spe:g}])')
  return frozenset(points)


def _eval_steps(config, phases, spe: int, forks: frozenset[int]) -> frozenset[int]:
  """Every `eval_every` inside each phase (counted from its start), at each phase's end and at each fork point."""
  every = config_lib.steps_of(config, 'eval_every', spe, path='') or spe
  out = set(forks)
  for p in phases:
    out.update(range(p.start + every, p.end, every))
    out.add(p.end)
  return frozenset(out)


def _save_steps(config, phases, spe: int, forks: frozenset[int]) -> frozenset[int]:
  """Every `checkpoint_every` (counted from step 0), at each phase boundary, at each fork point, at the end."""
  every = config_lib.steps_of(config, 'checkpoint_every', spe, path='')
  out = {p.end for p in phases} | forks
  if every:
    out.update(range(every, phases[-1].end, every))
  return frozenset(out)


def resolve(config: ml_collections.ConfigDict, steps_per_epoch: int,
            build_ops: Optional[BuildOps] = None) -> Plan:
  """The plan of a validated config whose training split gives `steps_per_epoch` batches per epoch.

  A phase whose `lr.base` is unset starts at the previous phase's rate at its last step: the paper's rule for
  refinement after a step schedule (e.g. 0.001 after 0.1 ÷10 at 150 and 275). A phase with lr schedule
  'continue' keeps the previous phase's schedule itself, boundaries in the run's global steps (Figure 4: a
  switch at epoch 100 of a run with ÷10 at 150 and 275 still gets both drops).
  """
  spe, phases = steps_per_epoch, []
  for i, (name, start, end) in enumerate(_spans(config, spe)):
    base = config.phases[name].lr.base
    if base is None and config.phases[name].lr.schedule != 'continue':
      base = float(phases[-1].lr(phases[-1].end - 1))
    phases.append(_phase(config, i, name, start, end, base, spe, build_ops, phases[-1] if phases else None))
  ends = [p.end for p in phases]

  def whole(attr):
    return schedules.piecewise(ends, [getattr(p, attr) for p in phases])
  eval_ops = (functools.lru_cache(maxsize=None)(functools.partial(build_ops, config.pp_eval, 1.0, 'pp_eval'))
              if build_ops else _no_ops)
  forks = _fork_points(config, spe, ends[-1])
  return Plan(steps_per_epoch=spe, phases=tuple(phases), eval_steps=_eval_steps(config, phases, spe, forks),
              save_steps=_save_steps(config, phases, spe, forks), keep_steps=frozenset(ends) | forks,
              log_every=int(config.log_every_steps),
              seed=int(config.seed), lr=whole('lr'), mix_gamma=whole('mix_gamma'), mix_prob=whole('mix_prob'),
              aug_prob=whole('aug_prob'), eval_ops=eval_ops)
