"""The run plan: everything the loop needs to know about a run, resolved once from the run spec.

`resolve(spec, num_train_examples)` gives the steps per epoch, the total, the eval / checkpoint / log steps and,
per phase, its span, its on-device mixing (`MixSpec`), its host-op pipeline by augmentation probability and its
schedules; `plan.spec` keeps the typed spec (data, model, optimizer, evaluation, checkpoints, bookkeeping).
Training, fork, preview, analysis and the benchmarks read these here; nothing below re-derives them, and no
ConfigDict reaches this module (`spec.from_config` is the ConfigDict's last stop).

This module imports no TensorFlow: the host-op compiler is handed in (`build_ops`, normally
`refine_jax.data.ops.build`), so a device-only process (a benchmark on an accelerator machine without
TensorFlow) can resolve a plan too.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

from absl import logging

from refine_jax import schedules
from refine_jax.augment import mixing
from refine_jax.errors import ConfigError
from refine_jax.spec import Duration, PhaseSpec, Spec

# spec, augmentation probability, field (for errors) -> a host pipeline (`data.ops.Pipeline`); the same arguments
# must give an equal pipeline (the plan caches one per probability, and the input pipeline compares them by value)
BuildOps = Callable[[str, float, str], Any]
# The training loss is checked for finiteness at least this often (and at every log / eval / save step), so a
# divergence stops the run at most this many steps after the step that produced it, whatever log_every_steps is.
LOSS_CHECK_EVERY = 100


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
  spec: Spec = dataclasses.field(repr=False, compare=False)
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


def steps_per_epoch(spec: Spec, num_train_examples: int) -> int:
  """Whole global batches in one pass over the training split (the remainder is dropped each epoch); a batch
  larger than the split is refused."""
  spe = num_train_examples // spec.batch_size
  if spe < 1:
    raise ConfigError('batch_size', f'{spec.batch_size} is larger than the training split ({num_train_examples} '
                      'examples); allowed: at most that many')
  return spe


def _spans(spec: Spec, spe: int) -> list[tuple[PhaseSpec, int, int]]:
  out, start = [], 0
  for p in spec.phases:
    n = p.length.to_steps(spe)
    if n < 1:
      key, value = p.length.given
      raise ConfigError(f'phases.{p.name}.{key}', f'{value} rounds to 0 steps at {spe} steps per epoch; allowed: '
                        f'at least {1 / spe:.3g} epochs (1 step)')
    out.append((p, start, start + n))
    start += n
  return out


def _host_ops(build_ops: Optional[BuildOps], spec: str, field: str) -> Callable[[float], Any]:
  """The pipeline of `spec` at an augmentation probability, built once per probability."""
  if not build_ops:
    return _no_ops
  return functools.lru_cache(maxsize=None)(functools.partial(build_ops, spec, field=field))


def _phase(p: PhaseSpec, i: int, start: int, end: int, lr_base: float, spe: int, build_ops: Optional[BuildOps],
           prev: Optional[Phase] = None) -> Phase:
  path = f'phases.{p.name}'
  m = p.mix
  # The mix decay fades what `mix.decay_of` names: γ (gradual Mixup), the probability (gradual CutMix), or both.
  decay = m.decay.to_steps(spe) or 0
  gamma_decay, prob_decay = (decay if what in m.decay_of else 0 for what in ('gamma', 'prob'))
  mixes = m.kind != 'none'
  if p.lr.schedule == 'continue':  # the previous phase's step schedule over global steps (validated: a step one)
    lr_fn = prev.lr
  else:
    boundaries = p.lr.boundaries.to_steps(spe) or ()
    _warn_outside(f'{path}.lr', p.lr.schedule, boundaries, end - start)
    lr_fn = schedules.phase_lr(start, end - start, p.lr.schedule, float(lr_base), factor=p.lr.factor,
                               warmup=p.lr.warmup.to_steps(spe) or 0, boundaries=boundaries)
  return Phase(name=p.name, index=i, start=start, end=end, pp=p.pp,
               mix=mixing.MixSpec(kind=m.kind, per_example=m.per_example, layers=m.layers),
               lr=lr_fn, mix_gamma=schedules.decaying(end, m.gamma if mixes else 0.0, gamma_decay),
               mix_prob=schedules.decaying(end, m.prob if mixes else 0.0, prob_decay),
               aug_prob=schedules.decaying(end, p.aug_prob, p.aug_prob_decay.to_steps(spe) or 0),
               host_ops=_host_ops(build_ops, p.pp, f'{path}.pp'))


def _warn_outside(path: str, kind: str, boundaries: tuple[int, ...], num_steps: int) -> None:
  """A warning (not an error: a shortened test run may keep the full run's boundaries) for multistep lr
  boundaries at or past the phase's end, which never lower the rate."""
  late = [b for b in boundaries if b >= num_steps]
  if kind == 'multistep' and late:
    logging.warning('%s.boundaries: %s of %s (steps from the phase start) fall at or past the phase\'s end '
                    '(%d steps) and never lower the learning rate', path, late, boundaries, num_steps)


def _fork_points(points: Duration, spe: int, total: int) -> frozenset[int]:
  """`fork_points_epochs` / `_steps` as global steps, each inside (0, total]."""
  key, given = points.given
  steps = points.to_steps(spe) or ()
  for v, k in zip(given or (), steps):
    if not 0 < k <= total:
      raise ConfigError(f'fork_points_{key}', f'{v} is step {k}, outside the run\'s steps (0, {total}] '
                        f'(epochs (0, {total / spe:g}])')
  return frozenset(steps)


def _eval_steps(every: Duration, phases, spe: int, forks: frozenset[int]) -> frozenset[int]:
  """Every `eval_every` inside each phase (counted from its start), at each phase's end and at each fork point."""
  n = every.to_steps(spe) or spe
  out = set(forks)
  for p in phases:
    out.update(range(p.start + n, p.end, n))
    out.add(p.end)
  return frozenset(out)


def _save_steps(every: Duration, phases, forks: frozenset[int], spe: int) -> frozenset[int]:
  """Every `checkpoint_every` (counted from step 0), at each phase boundary, at each fork point, at the end."""
  n = every.to_steps(spe)
  out = {p.end for p in phases} | forks
  if n:
    out.update(range(n, phases[-1].end, n))
  return frozenset(out)


def resolve(spec: Spec, num_train_examples: int, build_ops: Optional[BuildOps] = None) -> Plan:
  """The plan of `spec` for a training split of `num_train_examples` examples (global).

  A phase whose `lr.base` is unset starts at the previous phase's rate at its last step: the paper's rule for
  refinement after a step schedule (e.g. 0.001 after 0.1 ÷10 at 150 and 275). A phase with lr schedule
  'continue' keeps the previous phase's schedule itself, boundaries in the run's global steps (Figure 4: a
  switch at epoch 100 of a run with ÷10 at 150 and 275 still gets both drops).
  """
  spe, phases = steps_per_epoch(spec, num_train_examples), []
  for i, (p, start, end) in enumerate(_spans(spec, spe)):
    base = p.lr.base
    if base is None and p.lr.schedule != 'continue':
      base = float(phases[-1].lr(phases[-1].end - 1))
    phases.append(_phase(p, i, start, end, base, spe, build_ops, phases[-1] if phases else None))
  ends = [p.end for p in phases]

  def whole(attr):
    return schedules.piecewise(ends, [getattr(p, attr) for p in phases])
  forks = _fork_points(spec.checkpoints.fork_points, spe, ends[-1])
  eval_ops = _host_ops(build_ops, spec.eval.pp, 'pp_eval')
  return Plan(spec=spec, steps_per_epoch=spe, phases=tuple(phases),
              eval_steps=_eval_steps(spec.eval.every, phases, spe, forks),
              save_steps=_save_steps(spec.checkpoints.every, phases, forks, spe), keep_steps=frozenset(ends) | forks,
              log_every=spec.log_every, seed=spec.seed, lr=whole('lr'), mix_gamma=whole('mix_gamma'),
              mix_prob=whole('mix_prob'), aug_prob=whole('aug_prob'), eval_ops=lambda: eval_ops(1.0))


def describe(plan: Plan, num_train_examples: int) -> list[str]:
  """The plan in words, a line each (`--dry_run`): the steps, and per phase its span, learning rate at each
  change, mixing and host ops; the evals and checkpoints."""
  import numpy as np
  spec, spe = plan.spec, plan.steps_per_epoch
  ep = lambda s: f'{s / spe:g}'  # noqa: E731
  out = [f'{plan.total_steps} steps = {plan.total_steps / spe:g} epochs of {spe} steps: {spec.data.dataset} '
         f'{spec.data.train_split!r} ({num_train_examples} examples, batch {spec.batch_size}; '
         f'{num_train_examples - spe * spec.batch_size} left out of each epoch)']
  for p, ps in zip(plan.phases, spec.phases):
    out.append(f'phase {p.name}: epochs {ep(p.start)}..{ep(p.end)}, steps {p.start}..{p.end} ({p.num_steps} steps)')
    lr = np.asarray(p.lr(np.arange(p.start, p.end)), np.float64)
    changes = [0] + [i for i in range(1, len(lr)) if lr[i] != lr[i - 1]]
    if len(changes) <= 6:
      rates = ', '.join(f'{lr[i]:.4g} from epoch {ep(p.start + i)}' for i in changes)
    else:
      rates = f'{lr[0]:.4g} at the start, {lr[len(lr) // 2]:.4g} at mid-phase, {lr[-1]:.4g} at the last step'
    out.append(f'  lr ({ps.lr.schedule}): {rates}')
    g0, g1 = float(p.mix_gamma(p.start)), float(p.mix_gamma(p.end - 1))
    q0, q1 = float(p.mix_prob(p.start)), float(p.mix_prob(p.end - 1))
    fade = f', fading to γ {g1:.3g} / probability {q1:.3g} at its last step' if (g0, q0) != (g1, q1) else ''
    mix = 'none' if p.mix.kind == 'none' else f'{p.mix.kind}, λ ~ Beta({g0:g}, {g0:g}), probability {q0:g}{fade}'
    out.append(f'  on-device mixing: {mix}')
    a0, a1 = float(p.aug_prob(p.start)), float(p.aug_prob(p.end - 1))
    out.append(f'  host ops: {p.pp!r}' + (f' (augmentation probability {a0:g} → {a1:g})' if a0 != a1 else ''))
  saves = sorted(plan.save_steps)
  out.append(f'evals: {len(plan.eval_steps)} (steps {_steps_list(plan.eval_steps)}), with R̂ / R̂aug on '
             f'{spec.eval.diag_examples} training examples and, at each phase end, '
             + ('none' if spec.eval.phase_end_examples == 0 else 'the whole training split'
                if spec.eval.phase_end_examples is None else f'its first {spec.eval.phase_end_examples}'))
  out.append(f'checkpoints: {len(saves)} (steps {_steps_list(saves)}); the newest {spec.checkpoints.keep} kept, and '
             f'steps {_steps_list(plan.keep_steps)}')
  return out


def _steps_list(steps) -> str:
  s = sorted(steps)
  return ', '.join(map(str, s)) if len(s) <= 8 else f'{", ".join(map(str, s[:3]))}, ..., {", ".join(map(str, s[-2:]))}'
