"""Train-step throughput: our jitted step against the same model's eager PyTorch step, same device/batch/precision.

    python bench/bench_step.py [--models=preact_resnet18,wide_resnet28_10,resnet50] [--steps=3] [--rounds=2]
        [--torch_python=BENCH_ENV/bin/python] [--dtype=float32] [--peak_tflops=N]

Ours is `refine_jax.steps.train_step` on the Env training builds (`bench.common.step_env`: mixing off, SGD +
Nesterov momentum + weight decay, uint8 batch normalised on device; no TensorFlow imported) compiled once per
model; PyTorch's is bench/torch_step.py (eager, train mode, the same
optimiser) in the bench environment. Rounds alternate the two sides so load drifts hit both; the table gives
the median step, images/s, the ratio, both parameter counts (the same architecture), and the model FLOP rate
from `refine_jax.flops`' count of our step (with --peak_tflops, the model FLOP utilisation).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from bench import common  # noqa: E402
from refine_jax import flops  # noqa: E402
from refine_jax import steps  # noqa: E402

# model: (image size, classes, batch) — CIFAR models at 32 px, ResNet-50 at ImageNet's 224 px.
SHAPES = {'preact_resnet18': (32, 10, 64), 'wide_resnet28_10': (32, 10, 32), 'resnet50': (224, 1000, 16)}


class Ours:
  def __init__(self, name: str, batch: int, size: int, classes: int, dtype: str):
    env, phase = common.step_env(name, classes, dtype=dtype)
    mesh = env.mesh
    self.state = steps.init_state(env, (size, size, 3), 0)
    self.params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params))
    rng = np.random.default_rng(0)
    batch_np = {'image': rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
                'label': rng.integers(0, classes, (batch,), dtype=np.int32)}
    self.batch = jax.device_put(batch_np, NamedSharding(mesh, P('data')))
    fn = jax.jit(functools.partial(steps.train_step, env, phase.mix), donate_argnums=0)
    self.flops = flops.count(fn, self.state, self.batch)
    self.fn = fn.lower(self.state, self.batch).compile()
    self.state, loss = self.fn(self.state, self.batch)  # warm-up
    loss.block_until_ready()

  def time_steps(self, n: int) -> list[float]:
    out = []
    for _ in range(n):
      t = time.perf_counter()
      self.state, loss = self.fn(self.state, self.batch)
      loss.block_until_ready()
      out.append(time.perf_counter() - t)
    return out


def torch_steps(python: str, name: str, batch: int, size: int, classes: int, steps: int, dtype: str,
                channels_last: bool) -> dict:
  cmd = [python, '-m', 'bench.torch_step', f'--model={name}', f'--batch={batch}', f'--size={size}',
         f'--classes={classes}', f'--steps={steps}'] + (['--bf16'] if dtype == 'bfloat16' else []) + (
             ['--channels_last'] if channels_last else [])
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--models', default=','.join(SHAPES))
  ap.add_argument('--batch', type=int, help='override every model\'s batch')
  ap.add_argument('--steps', type=int, default=3)
  ap.add_argument('--rounds', type=int, default=2)
  ap.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  ap.add_argument('--torch_python', help='python of an environment with torch and torchvision')
  ap.add_argument('--channels_last', action='store_true', help='PyTorch side in channels_last memory format')
  ap.add_argument('--no_record', action='store_true', help='print only; do not append to bench/RESULTS.md')
  ap.add_argument('--peak_tflops', type=float, help='the device\'s peak for --dtype, for the FLOP utilisation')
  a = ap.parse_args()
  dev = jax.devices()[0]
  rows = [f'| model (batch, px, {a.dtype}) | ours step (s) | ours images/s | PyTorch step (s) | PyTorch images/s | '
          'ours / PyTorch | params ours / PyTorch | our model TFLOP/s' + (' (MFU)' if a.peak_tflops else '') + ' |',
          '|---|---|---|---|---|---|---|---|']
  torch_info = ''
  for name in a.models.split(','):
    size, classes, batch = SHAPES[name]
    batch = a.batch or batch
    ours = Ours(name, batch, size, classes, a.dtype)
    t_ours, t_torch, tparams = [], [], None
    for _ in range(a.rounds):
      t_ours += ours.time_steps(a.steps)
      if a.torch_python:
        r = torch_steps(a.torch_python, name, batch, size, classes, a.steps, a.dtype, a.channels_last)
        t_torch += r['step_s']
        tparams = r['params']
        torch_info = f'torch {r["torch"]} on {r["device"]}, {r["threads"]} threads'
    mo = statistics.median(t_ours)
    tf = ours.flops / mo / 1e12
    flop_col = f'{tf:.3f}' + (f' ({tf / a.peak_tflops:.1%})' if a.peak_tflops else '')
    if t_torch:
      mt = statistics.median(t_torch)
      tcols = f'{mt:.3f} | {batch / mt:.1f} | {mt / mo:.2f} | {ours.params / 1e6:.2f}M / {tparams / 1e6:.2f}M'
    else:
      tcols = f'— | — | — | {ours.params / 1e6:.2f}M / —'
    rows.append(f'| {name} ({batch}, {size}, {a.dtype}) | {mo:.3f} | {batch / mo:.1f} | {tcols} | {flop_col} |')
    print(rows[-1], flush=True)
    del ours
  table = '\n'.join(rows)
  table += (f'\n\nDevice: {dev.platform} ({dev.device_kind}), {jax.device_count()} device(s). '
            f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}. ' + (f'PyTorch side: {torch_info}' + (
                ', channels_last.' if a.channels_last else '.') if torch_info else ''))
  print(table)
  if not a.no_record:
    common.append(f'Train step: jitted JAX vs eager PyTorch ({dev.platform})', table, ('jax', 'flax'))


if __name__ == '__main__':
  main()
