"""Everything that changes over a run, as pure functions of the global step.

A resumed run only needs the step: the learning rate, mixing strength and probability and the host
augmentation probability are recomputed from it, never carried as state. The functions accept Python ints
and traced jnp scalars alike, so the jitted train step and the host loop agree exactly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp

from refine_jax.config import Phase, list_steps_of, steps_of

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def _phase_lr(p: Phase, base: float, steps_per_epoch: int) -> Schedule:
  """The learning rate inside one phase, as a function of the global step."""
  cfg = p.cfg.lr
  path = f'phases.{p.name}.lr'
  warmup = steps_of(cfg, 'warmup', steps_per_epoch, path=path) or 0
  bounds = list_steps_of(cfg, 'boundaries', steps_per_epoch, path=path)

  def lr(step):
    t = jnp.asarray(step, jnp.float32) - p.start
    if cfg.schedule == 'constant':
      v = jnp.full_like(t, base)
    elif cfg.schedule == 'multistep':
      n = sum((t >= b).astype(jnp.float32) for b in bounds) if bounds else jnp.zeros_like(t)
      v = base * jnp.power(jnp.float32(cfg.factor), n)
    else:  # cosine over the phase after warmup
      span = max(p.num_steps - warmup, 1)
      frac = jnp.clip((t - warmup) / span, 0.0, 1.0)
      v = base * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    if warmup:
      v = v * jnp.minimum(1.0, (t + 1.0) / warmup)
    return v

  return lr


def _piecewise(phases: Sequence[Phase], fns: Sequence[Schedule]) -> Schedule:
  def f(step):
    step = jnp.asarray(step)
    out = fns[-1](step)
    for p, fn in zip(reversed(phases[:-1]), reversed(fns[:-1])):
      out = jnp.where(step < p.end, fn(step), out)
    return out
  return f


def learning_rate(phases: Sequence[Phase], steps_per_epoch: int) -> Schedule:
  """lr(step) over the whole run.

  A phase whose `lr.base` is unset starts at the previous phase's rate at its last step — the paper's rule for
  refinement after a step schedule (e.g. 0.001 after 0.1 ÷10 at 150 and 275).
  """
  fns: list[Schedule] = []
  for i, p in enumerate(phases):
    base = p.cfg.lr.base
    if base is None:
      base = float(fns[i - 1](phases[i - 1].end - 1))
    fns.append(_phase_lr(p, float(base), steps_per_epoch))
  return _piecewise(phases, fns)


def _decay(p: Phase, value: float, decay_steps: int) -> Schedule:
  """`value` inside the phase, falling linearly to 0 over its last `decay_steps` steps (the gradual variant)."""
  def f(step):
    step = jnp.asarray(step, jnp.float32)
    if not decay_steps:
      return jnp.full_like(step, value)
    return value * jnp.clip((p.end - step) / decay_steps, 0.0, 1.0)
  return f


MIX_DECAY_DEFAULT = ('gamma', 'prob')


def _mix_decay_steps(p: Phase, what: str, steps_per_epoch: int) -> int:
  """The mix decay length if `mix.decay_of` names `what` ('gamma' or 'prob'), else 0 (kept constant)."""
  m = p.cfg.mix
  decay_of = tuple(m.decay_of) if 'decay_of' in m else MIX_DECAY_DEFAULT
  if what not in decay_of:
    return 0
  return steps_of(m, 'decay', steps_per_epoch, path=f'phases.{p.name}.mix') or 0


def mix_strength(phases: Sequence[Phase], steps_per_epoch: int) -> Schedule:
  """γ(step): the Beta(γ, γ) parameter of Mixup / Manifold Mixup / CutMix (0 in a phase without mixing).

  It falls to 0 over the mix decay when `mix.decay_of` names 'gamma' (the paper's gradual Mixup).
  """
  return _piecewise(phases, [
      _decay(p, p.cfg.mix.gamma if p.cfg.mix.kind != 'none' else 0.0,
             _mix_decay_steps(p, 'gamma', steps_per_epoch))
      for p in phases])


def mix_prob(phases: Sequence[Phase], steps_per_epoch: int) -> Schedule:
  """p(step): the probability that a batch is mixed (0 in a phase without mixing).

  It falls to 0 over the mix decay when `mix.decay_of` names 'prob' (the paper's gradual CutMix).
  """
  return _piecewise(phases, [
      _decay(p, p.cfg.mix.prob if p.cfg.mix.kind != 'none' else 0.0,
             _mix_decay_steps(p, 'prob', steps_per_epoch))
      for p in phases])


def aug_prob(phases: Sequence[Phase], steps_per_epoch: int) -> Schedule:
  """The host augmentation probability (AutoAugment / RandAugment / Cutout), read once per epoch."""
  return _piecewise(phases, [
      _decay(p, p.cfg.aug_prob,
             steps_of(p.cfg, 'aug_prob_decay', steps_per_epoch, path=f'phases.{p.name}') or 0)
      for p in phases])
