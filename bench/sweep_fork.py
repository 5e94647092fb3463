"""Wall time of a switch-epoch sweep that forks from one trunk vs the same switches run separately.

    python bench/sweep_fork.py [--root=/tmp/bench_sweep] [--total=40] [--switches=20,25,30,35] \
        [--boundaries=15,27.5]

Both sides run on configs/digits_demo.py (lr ÷10 at the given epochs of the whole run, as the paper's ÷10 at
150 and 275 of 400; refine lr 'continue'), one seed, one process at a time. The sweep side runs exactly the
commands `analyze sweep` runs (`analyze.sweep_runs`: the trunk in one process, then one fork per switch, with
the sweep's shared compilation cache); the separate side runs `refine_jax.main` from scratch per switch, as a
user would (no compilation cache). The two sides' processes alternate (separate run, trunk, fork,
separate run, fork, ...) so that both see the same load on a shared machine. Prints each process's wall time, the
sums, their ratio, the epochs each side trained, the load average, and whether every switch's metrics.jsonl
is the same on both sides (it must be: a fork equals the run from scratch).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from refine_jax import analyze  # noqa: E402


def _rows(wd):
  with open(os.path.join(wd, 'metrics.jsonl')) as f:
    return [json.loads(l) for l in f if l.strip()]


def _timed(argv, env) -> float:
  t0 = time.time()
  p = subprocess.run(argv, env=env, capture_output=True, text=True)
  if p.returncode:
    raise SystemExit(f'{" ".join(argv)} exited {p.returncode}\n{p.stderr[-3000:]}')
  return time.time() - t0


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--root', default='/tmp/bench_sweep')
  ap.add_argument('--total', type=float, default=40)
  ap.add_argument('--switches', default='20,25,30,35')
  ap.add_argument('--boundaries', default='15,27.5')
  args = ap.parse_args()
  shutil.rmtree(args.root, ignore_errors=True)
  T, switches = args.total, sorted(float(v) for v in args.switches.split(','))
  cfg = os.path.join(ROOT, 'configs', 'digits_demo.py')
  common = [f'--config.phases.augmented.lr.boundaries_epochs=({args.boundaries},)']
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  for k in ('JAX_COMPILATION_CACHE_DIR', 'XLA_FLAGS'):
    env.pop(k, None)
  sweep_env = dict(env, **analyze.sweep_cache_env(f'{args.root}/sweep', env))
  runs = analyze.sweep_runs(cfg, f'{args.root}/sweep', T, switches, [0], common, python=sys.executable)
  trunk, forks = runs[0], {r['switch_epoch']: r for r in runs[1:]}
  def separate(a):
    argv = [sys.executable, '-m', 'refine_jax.main', f'--config={cfg}', f'--workdir={args.root}/separate/s{a:g}',
            f'--config.phases.augmented.epochs={a:g}', *common]
    argv += (['--config.phase_order=("augmented",)'] if a == T else
             [f'--config.phases.refine.epochs={T - a:g}', '--config.phases.refine.lr.schedule=continue'])
    return _timed(argv, env)
  load0 = os.getloadavg()
  t_sep = [separate(switches[0])]  # before the trunk: neither side's first process runs alone at the start
  t_sweep = [_timed(trunk['argv'], sweep_env), _timed(forks[switches[0]]['argv'], sweep_env)]
  for a in switches[1:]:
    t_sep.append(separate(a))
    t_sweep.append(_timed(forks[a]['argv'], sweep_env))
  load1 = os.getloadavg()
  same = all(_rows(forks[a]['workdir']) == _rows(f'{args.root}/separate/s{a:g}') for a in switches)
  epochs_sweep = max(switches) + sum(T - a for a in switches)
  epochs_sep = len(switches) * T
  print(f'switches {args.switches} of a {T:g}-epoch digits run (lr /10 at {args.boundaries}), 1 seed')
  print(f'load average (1, 5, 15 min) at start {load0}, at end {load1}')
  print('sweep processes (trunk, then forks at ' + args.switches + '): ' + ', '.join(f'{t:.1f}' for t in t_sweep))
  print('separate runs (' + args.switches + '): ' + ', '.join(f'{t:.1f}' for t in t_sep))
  print(f'{"":12s}{"wall s":>10s}{"epochs":>8s}{"processes":>11s}')
  print(f'{"sweep+fork":12s}{sum(t_sweep):10.1f}{epochs_sweep:8g}{len(t_sweep):11d}')
  print(f'{"separate":12s}{sum(t_sep):10.1f}{epochs_sep:8g}{len(t_sep):11d}')
  print(f'wall ratio {sum(t_sweep) / sum(t_sep):.3f}, epochs ratio {epochs_sweep / epochs_sep:.3f}; '
        f'metrics.jsonl of every switch identical on both sides: {same}')


if __name__ == '__main__':
  main()
