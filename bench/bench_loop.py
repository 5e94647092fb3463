"""Does the training loop keep the device busy? The real loop's images/s against the bare jitted step's.

    python bench/bench_loop.py [--rounds=2] [--epochs=10] [--model=resnet_tiny] [--width=W] [--batch=128] [--smoke]

One process, side by side, rounds interleaved (load drifts hit every variant):
- bare: `steps.train_step` of the loop's own Env (same model, batch, mixing, optimizer), compiled once, on one
  device-resident batch; images/s over a timed stretch of steps (blocked on at the end).
- loop: `train.train_and_evaluate` in this process on CIFAR-10 from TFDS (AutoAugment + Cutout on the host,
  Mixup on device) at the paper's cadence, eval every epoch (test metrics + R̂ + R̂aug) and a checkpoint every 10
  epochs. Everything comes from the run's own clock, its workdir's timing.json (`loop_figures`): images/s is the
  images trained over the seconds in the phase loops less those in evals and blocked in saves; the shares are
  the seconds in evals, and blocked in saves, over the seconds in the phase loops. bench/device_check.py reads
  the loop of a `python -m refine_jax.main` run on an accelerator with the same `loop_figures` and `Bare`.
- the same loop with the host made slower than the step (a bench-only `sleep(ms)` op, serialised, after the
  augmentation), with the device prefetch on (depth 2) and off (0).

The data are CIFAR-10 scaled down 1:20 with the paper's proportions kept: train[:2560] (20 steps of 128 an
epoch), test[:512] (test / train = 1/5 as 10,000 / 50,000) and 128 diagnostic examples (about 2,000 / 50,000).
A save costs the same whatever the epoch's length, so its share here is 20x its share on full CIFAR-10.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from bench import common  # noqa: E402
from configs import common as cfg_common  # noqa: E402
from refine_jax import registries  # noqa: E402
from refine_jax import spec as spec_lib  # noqa: E402
from refine_jax import workdir as workdir_lib  # noqa: E402
from refine_jax import plan as plan_lib  # noqa: E402
from refine_jax import steps  # noqa: E402
from refine_jax import train  # noqa: E402
from refine_jax.data import ops as ops_lib  # noqa: E402

TFDS_DIR = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'tensorflow_datasets')
HOST_PP = 'pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)'
_SLEEP_LOCK = threading.Lock()


@ops_lib.register('sleep')
def sleep(ms: float):
  """Bench only: holds each batch `ms` milliseconds, one batch at a time (a host stage of fixed throughput)."""
  import tensorflow as tf

  def wait(images):
    with _SLEEP_LOCK:
      time.sleep(ms / 1000)
    return images

  def fn(images, u):
    out = tf.numpy_function(wait, [images], tf.uint8, stateful=True)
    return tf.ensure_shape(out, images.shape)
  return ops_lib.BatchOp(0, fn)


def make_config(a, pp: str, prefetch: int):
  c = cfg_common.get_config()
  c.dataset, c.data_dir = 'cifar10', a.data_dir
  c.train_split, c.eval_split = f'train[:{20 * a.batch}]', f'test[:{4 * a.batch}]'
  c.model, c.batch_size, c.eval_batch_size, c.diag_examples = a.model, a.batch, a.batch, a.batch
  if a.width:
    c.model_kwargs.width = a.width
  c.phase_order = ('augmented',)
  c.phases.augmented = cfg_common.phase(a.epochs, pp, cfg_common.mix('mixup', 1.0), cfg_common.lr('constant', 0.05))
  c.eval_every_epochs, c.checkpoint_every_epochs, c.log_every_steps = 1.0, 10.0, a.log_every
  c.prefetch_to_device = prefetch
  return c


class Bare:
  """The loop's own first-phase step (Env from the same config and plan, state and batch placed as the loop places
  them) on one device-resident batch of `size`-pixel images of `num_classes` classes."""

  def __init__(self, config, steps_per_epoch: int, size: int = 32, num_classes: int = 10):
    spec = spec_lib.from_config(config, registries.default())
    plan = plan_lib.resolve(spec, steps_per_epoch * spec.batch_size, ops_lib.build)
    mesh = steps.make_mesh()
    env = steps.make_env(plan, mesh, num_classes=num_classes, mean=(125.0,) * 3, std=(63.0,) * 3)
    rng = np.random.default_rng(0)
    b = config.batch_size
    self.batch = jax.device_put({'image': rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8),
                                 'label': rng.integers(0, num_classes, (b,), dtype=np.int32)},
                                NamedSharding(mesh, P('data')))
    self.state = jax.jit(functools.partial(steps.init_state, env, (size, size, 3)), static_argnums=0,
                         out_shardings=NamedSharding(mesh, P()))(plan.seed)
    self.fn = jax.jit(functools.partial(steps.train_step, env, plan.phases[0].mix), donate_argnums=0)
    self.run(2)  # compile and warm up

  def run(self, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
      self.state, loss = self.fn(self.state, self.batch)
    loss.block_until_ready()
    return n * self.batch['label'].shape[0] / (time.perf_counter() - t)


def loop_figures(t: dict) -> dict:
  """A run's figures from its own clock (its workdir's timing.json, `clock.Clock.timing`): images/s in the phase
  loops with evals and blocking saves left out; the shares of the loop's seconds in evals with their diagnostics
  (`eval_share`; `eval_share_steady` without each phase's first eval, which compiles) and blocked in saves; and
  the seconds of one eval / one blocking save."""
  train_s = t['loop_s'] - t['eval_s'] - t['save_s']
  steady = t['loop_s'] - t['first_eval_s']
  return {'ips': t['images'] / train_s, 'train_s': train_s, 'loop_s': t['loop_s'], 'eval_s': t['eval_s'],
          'save_s': t['save_s'], 'first_eval_s': t['first_eval_s'], 'evals': t['evals'], 'saves': t['saves'],
          'eval_share': t['eval_s'] / t['loop_s'],
          'eval_share_steady': (t['eval_s'] - t['first_eval_s']) / steady if steady > 0 else None,
          'save_share': t['save_s'] / t['loop_s'], 'eval_s_each': t['eval_s'] / t['evals'] if t['evals'] else None,
          'save_s_each': t['save_s'] / t['saves'] if t['saves'] else None, 'wall_s': t['wall_s'],
          'peak_bytes_in_use': t['peak_bytes_in_use']}


def run_loop(config) -> dict:
  """train_and_evaluate in this process; the figures of its clock."""
  w = tempfile.mkdtemp(prefix='bench_loop_')
  try:
    train.train_and_evaluate(config, w)
    return loop_figures(workdir_lib.read_json(workdir_lib.path(w, workdir_lib.TIMING)))
  finally:
    shutil.rmtree(w, ignore_errors=True)


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--rounds', type=int, default=2)
  ap.add_argument('--epochs', type=float, default=10)
  ap.add_argument('--model', default='resnet_tiny')
  ap.add_argument('--batch', type=int, default=128)
  ap.add_argument('--width', type=int, default=None, help='model_kwargs width (resnet_tiny: 16 by default)')
  ap.add_argument('--log_every', type=int, default=5)
  ap.add_argument('--bare_steps', type=int, default=60)
  ap.add_argument('--slow_factor', type=float, default=1.5, help='host sleep per batch, in bare step times')
  ap.add_argument('--data_dir', default=TFDS_DIR)
  ap.add_argument('--smoke', action='store_true', help='tiny: 2 epochs, batch 16, 1 round, no record')
  ap.add_argument('--no_record', action='store_true')
  a = ap.parse_args()
  logging.set_verbosity(logging.INFO)
  if a.smoke:
    a.rounds, a.epochs, a.batch, a.bare_steps, a.log_every, a.no_record = 1, 2, 16, 4, 2, True
  bare = Bare(make_config(a, HOST_PP, 2), 20)
  step_s = a.batch / bare.run(a.bare_steps)
  slow_pp = f'{HOST_PP}|sleep({1000 * a.slow_factor * step_s:.0f})'
  variants = {'loop': (HOST_PP, 2), 'loop, prefetch off': (HOST_PP, 0),
              f'loop, host slower ({a.slow_factor:g}x step), prefetch 2': (slow_pp, 2),
              f'loop, host slower ({a.slow_factor:g}x step), prefetch off': (slow_pp, 0)}
  got = {'bare step': [], **{k: [] for k in variants}}
  for r in range(a.rounds):
    for name, (pp, depth) in variants.items():
      got['bare step'].append({'ips': bare.run(a.bare_steps)})
      got[name].append(run_loop(make_config(a, pp, depth)))
      print(f'round {r + 1} {name}: {got[name][-1]} (bare {got["bare step"][-1]["ips"]:.0f})', flush=True)
  bare_ips = statistics.median(x['ips'] for x in got['bare step'])
  # Each loop run is divided by the bare step measured right before it (the load moves between runs).
  adjacent = {k: [x['ips'] / b['ips'] for x, b in zip(got[k], got['bare step'][i::len(variants)])]
              for i, k in enumerate(variants)}
  rows = ['| variant | images/s (median of rounds) | ÷ bare step before it (median) | eval + diagnostics share | of it, steady '
          '(first eval left out) | blocking checkpoint share | loop s |', '|---|---|---|---|---|---|---|',
          f'| bare jitted step | {bare_ips:.0f} | 1.00 | | | | |']
  for name in variants:
    xs = got[name]
    ips = statistics.median(x['ips'] for x in xs)
    ev = statistics.median(x['eval_share'] for x in xs)
    ev_steady = statistics.median(x['eval_share_steady'] for x in xs)
    sv = statistics.median(x['save_share'] for x in xs)
    loop_s = ', '.join(f'{x["loop_s"]:.1f}' for x in xs)
    rows.append(f'| {name} | {ips:.0f} | {statistics.median(adjacent[name]):.3f} | {ev:.1%} | {ev_steady:.1%} | {sv:.2%} | {loop_s} |')
  table = '\n'.join(rows) + (
      f'\n\n{a.model}, batch {a.batch}, 32 px, float32, Mixup on device; host `{HOST_PP}`; {a.epochs:g} epochs of '
      f'{20 * a.batch} images, eval every epoch, checkpoint every 10; bare step {step_s * 1000:.0f} ms; slow host '
      f'`{slow_pp}`; rounds {a.rounds}, every loop variant after a bare-step measurement. Per round: '
      + '; '.join(f'{k}: ' + ', '.join(f'{x["ips"]:.0f}' for x in v) for k, v in got.items()))
  print(table)
  if not a.no_record:
    common.append(f'Training loop vs bare step ({jax.devices()[0].platform}, CIFAR-10)', table,
                  ('jax', 'flax', 'orbax.checkpoint', 'tensorflow'))


if __name__ == '__main__':
  main()
