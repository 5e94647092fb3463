"""Everything that changes over a run, as pure functions of the global step.

A resumed run only needs the step: the learning rate, mixing strength and probability and the host
augmentation probability are recomputed from it, never carried as state. The functions accept Python ints
and traced jnp scalars alike, so the jitted train step and the host loop agree exactly. Their arguments are
steps already resolved from the config (`plan.resolve` does that); this module reads no config.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp

from refine_jax import fields

Schedule = Callable[[jnp.ndarray], jnp.ndarray]
# A phase's own schedules ('continue' reuses the previous phase's), as the config declares them.
LR_KINDS = tuple(k for k in fields.LR_SCHEDULES if k != 'continue')


def phase_lr(start: int, num_steps: int, kind: str, base: float, *, factor: float = 0.1, warmup: int = 0,
             boundaries: Sequence[int] = ()) -> Schedule:
  """The learning rate inside a phase of `num_steps` steps from global step `start`.

  kind: 'constant'; 'multistep' (× `factor` at each boundary, counted in steps from the phase's start);
  'cosine' (from `base` to 0 over the phase after the warmup). A linear warmup over `warmup` steps scales all.
  """
  if kind not in LR_KINDS:
    raise ValueError(f'unknown learning-rate schedule {kind!r}; allowed: {", ".join(LR_KINDS)}')

  def lr(step):
    t = jnp.asarray(step, jnp.float32) - start
    if kind == 'constant':
      v = jnp.full_like(t, base)
    elif kind == 'multistep':
      n = sum((t >= b).astype(jnp.float32) for b in boundaries) if boundaries else jnp.zeros_like(t)
      v = base * jnp.power(jnp.float32(factor), n)
    else:  # 'cosine' over the phase after warmup
      span = max(num_steps - warmup, 1)
      frac = jnp.clip((t - warmup) / span, 0.0, 1.0)
      v = base * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    if warmup:
      v = v * jnp.minimum(1.0, (t + 1.0) / warmup)
    return v

  return lr


def decaying(end: int, value: float, decay_steps: int) -> Schedule:
  """`value` up to the phase's end, falling linearly to 0 over its last `decay_steps` steps (the gradual
  variant); constant when `decay_steps` is 0."""
  def f(step):
    step = jnp.asarray(step, jnp.float32)
    if not decay_steps:
      return jnp.full_like(step, value)
    return value * jnp.clip((end - step) / decay_steps, 0.0, 1.0)
  return f


def piecewise(ends: Sequence[int], fns: Sequence[Schedule]) -> Schedule:
  """fns[i] for steps before ends[i] (and after the previous end); the last fn from the last boundary on.

  The value is always computed from the step at run time, even where it is constant over the whole run: XLA
  would fold a constant γ into the jitted step (evaluating e.g. the Beta sampler's logarithms at compile time,
  rounded differently from the compiled code), so a run with one phase and a run that switches later would
  train different bits before the switch, and a fork could not equal a run from scratch.
  """
  def f(step):
    step = jnp.asarray(step)
    out = fns[-1](step)
    out = jnp.where(step >= 0, out, jnp.nan)  # the same value, never a compile-time constant
    for end, fn in zip(reversed(ends[:-1]), reversed(fns[:-1])):
      out = jnp.where(step < end, fn(step), out)
    return out
  return f
