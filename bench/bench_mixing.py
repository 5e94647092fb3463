"""Cost of on-device mixing: jitted train-step time with Mixup, CutMix, Manifold Mixup against none, one run.

    python bench/bench_mixing.py [--model=preact_resnet18] [--batch=32] [--steps=5] [--rounds=3]

Each kind gets its own Env (`bench.common.step_env`, as training builds it) and compiled
`refine_jax.steps.train_step`; timed steps are interleaved in
rounds so load drifts hit every kind alike, and the table reports the median step time and its ratio to none.
A second table times the mixing draw alone (jitted, one call at a time, median over `--draw_calls` calls
interleaved likewise): `mixing.sample_lambda` beside `jax.random.beta` (the former sampler, whose rejection
loops the GPU runtime steps from the host), per batch and per example, and `mixing.draw` of each kind; on a
loaded CPU it resolves what the step ratios cannot.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from bench import common  # noqa: E402
from refine_jax import steps  # noqa: E402
from refine_jax.augment import mixing  # noqa: E402

KINDS = ('none', 'mixup', 'cutmix', 'manifold_mixup')


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--model', default='preact_resnet18')
  ap.add_argument('--batch', type=int, default=32)
  ap.add_argument('--size', type=int, default=32)
  ap.add_argument('--steps', type=int, default=5)
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--draw_calls', type=int, default=200)
  a = ap.parse_args()
  envs = {k: common.step_env(a.model, 10, kind=k) for k in KINDS}
  mesh = envs['none'][0].mesh
  state = steps.init_state(envs['none'][0], (a.size, a.size, 3), 0)
  rng = np.random.default_rng(0)
  batch = {'image': rng.integers(0, 256, (a.batch, a.size, a.size, 3), dtype=np.uint8),
           'label': rng.integers(0, 10, (a.batch,), dtype=np.int32)}
  batch = jax.device_put(batch, NamedSharding(mesh, P('data')))
  fns, states = {}, {}
  for k in KINDS:
    env, phase = envs[k]
    fns[k] = jax.jit(functools.partial(steps.train_step, env, phase.mix))
    states[k], loss = fns[k](state, batch)  # compile + warm up
    loss.block_until_ready()
  times = {k: [] for k in KINDS}
  for _ in range(a.rounds):
    for k in KINDS:
      for _ in range(a.steps):
        t = time.perf_counter()
        states[k], loss = fns[k](states[k], batch)
        loss.block_until_ready()
        times[k].append(time.perf_counter() - t)
  base = statistics.median(times['none'])
  rows = [f'| mixing | median step (s), {a.model} batch {a.batch} at {a.size} px | vs none |', '|---|---|---|']
  for k in KINDS:
    m = statistics.median(times[k])
    rows.append(f'| {k} | {m:.4f} | {m / base:.3f} |')
  table = '\n'.join(rows) + '\n\n' + draw_table(envs, a.batch, a.size, a.draw_calls)
  print(table)
  common.append(f'Mixing overhead in the jitted train step ({jax.devices()[0].platform})', table, ('jax', 'flax'))


def _whole_draw(key, gamma, *, spec, batch, size):
  """Every output of one kind's `mixing.draw` (so that XLA drops none of it)."""
  m = mixing.draw(key, spec, gamma, jnp.float32(1.0), batch, (size, size))
  return m.idx, m.lam, m.layer, m.box


def draw_table(envs: dict, batch: int, size: int, calls: int) -> str:
  """Median µs per call of the jitted λ samplers (γ = 1, traced) and of each kind's whole draw."""
  fns = {}
  for name, shape in (('per batch', ()), (f'per example ({batch})', (batch,))):
    fns[f'mixing.sample_lambda, {name}'] = jax.jit(lambda k, g, s=shape: mixing.sample_lambda(k, g, s))
    fns[f'jax.random.beta, {name}'] = jax.jit(lambda k, g, s=shape: jax.random.beta(k, g, g, s))
  for k in KINDS[1:]:
    fns[f'mixing.draw, {k}'] = jax.jit(functools.partial(_whole_draw, spec=envs[k][1].mix, batch=batch, size=size))
  key, gamma = jax.random.PRNGKey(0), jnp.float32(1.0)
  times = {n: [] for n in fns}
  for f in fns.values():
    jax.block_until_ready(f(key, gamma))  # compile
  for _ in range(calls):
    for n, f in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(f(key, gamma))
      times[n].append(time.perf_counter() - t)
  rows = [f'| draw alone (jitted, γ = 1), batch {batch} | median µs per call |', '|---|---|']
  rows += [f'| {n} | {statistics.median(t) * 1e6:.1f} |' for n, t in times.items()]
  return '\n'.join(rows)


if __name__ == '__main__':
  main()
