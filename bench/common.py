"""Shared bits of the benchmarks: machine facts and appending a row to bench/RESULTS.md."""
from __future__ import annotations

import datetime
import os
import platform
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RESULTS.md')
_LOAD_AT_START = os.getloadavg()[0]  # read when a benchmark imports this module, before it measures


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    model = [l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')][0]
    cpu = model
  except (OSError, IndexError):
    pass
  return f'{os.cpu_count()} cores, {cpu}'


def versions(*mods: str) -> str:
  out = []
  for m in mods:
    try:
      out.append(f'{m} {__import__(m).__version__}')
    except ImportError:
      pass
  return ', '.join(out)


def append(title: str, table: str, mods: tuple[str, ...]) -> None:
  """Appends a dated section with the exact command, the machine and versions."""
  cmd = 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
  start, end = _LOAD_AT_START, os.getloadavg()[0]
  with open(RESULTS, 'a') as f:
    f.write(f'\n## {title} — {datetime.date.today().isoformat()}\n\n'
            f'- command: `{cmd}`\n- machine: {machine()} (1-min load average {start:.1f} at the start, {end:.1f} at the end)\n'
            f'- versions: {versions(*mods)}\n\n{table}\n')


def step_env(model: str, num_classes: int, *, dtype: str = 'float32', kind: str = 'none'):
  """(Env, Phase) of a one-phase run of `model` (SGD 0.01 constant, Nesterov momentum 0.9, weight decay 5e-4,
  `kind` mixing with γ = 1): the benchmarks build the very Env training builds (`steps.make_env`), with no
  TensorFlow imported."""
  from configs import common as cfg_common
  from refine_jax import plan as plan_lib
  from refine_jax import registries
  from refine_jax import spec as spec_lib
  from refine_jax import steps
  c = cfg_common.get_config()
  c.dataset, c.image_size, c.pp_eval = 'synthetic', 32, ''  # (validation only: no data is read)
  c.model, c.dtype = model, dtype
  c.optimizer.update({'momentum': 0.9, 'nesterov': True, 'weight_decay': 5e-4})
  c.phase_order = ('augmented',)
  c.phases.augmented = cfg_common.phase(None, '', cfg_common.mix(kind, 1.0), cfg_common.lr('constant', 0.01))
  c.phases.augmented.steps = 1 << 20
  plan = plan_lib.resolve(spec_lib.from_config(c, registries.default()), c.batch_size)  # one step per epoch
  env = steps.make_env(plan, steps.make_mesh(), num_classes=num_classes, mean=(0.5,) * 3, std=(0.25,) * 3)
  return env, plan.phases[0]


def train_split(config, pp: tuple[str, ...] = ('',)):
  """The training split of a complete `config`'s data, through the trainer's own source (an image folder streams
  its encoded files), its files checked with the decodes of the host-op specs `pp` that will read it."""
  from refine_jax import prepare
  from refine_jax.data import sources
  return sources.load(prepare.spec_of(config, devices=False).data, train=True, pp=pp)
