"""Wall time of a switch-epoch sweep that forks from one trunk vs the same switches run separately.

    python bench/sweep_fork.py [--root=/tmp/bench_sweep] [--total=12] [--switches=3,6,9,12]

Both sides run on configs/digits_demo.py (lr ÷10 at half the run, refine lr 'continue'), one seed, one process
at a time: `analyze sweep` (trunk segments + forks) and, for each switch, `refine_jax.main` from scratch.
Prints the two wall times side by side, their ratio, the epochs each trained, and whether every switch's
metrics.jsonl is the same on both sides (it must be: a fork equals the run from scratch).
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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--root', default='/tmp/bench_sweep')
  ap.add_argument('--total', type=float, default=12)
  ap.add_argument('--switches', default='3,6,9,12')
  args = ap.parse_args()
  shutil.rmtree(args.root, ignore_errors=True)
  T, switches = args.total, [float(v) for v in args.switches.split(',')]
  cfg = os.path.join(ROOT, 'configs', 'digits_demo.py')
  common = [f'--config.phases.augmented.lr.boundaries_epochs=({T / 2:g},)']
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  t0 = time.time()
  subprocess.run([sys.executable, '-m', 'refine_jax.analyze', 'sweep', f'--config={cfg}',
                  f'--workdir_root={args.root}/sweep', f'--total_epochs={T:g}', f'--switch_epochs={args.switches}',
                  '--seeds=0', *common], env=env, check=True, capture_output=True)
  t_sweep = time.time() - t0
  t0 = time.time()
  for a in switches:
    argv = [sys.executable, '-m', 'refine_jax.main', f'--config={cfg}', f'--workdir={args.root}/separate/s{a:g}',
            f'--config.phases.augmented.epochs={a:g}', *common]
    argv += (['--config.phase_order=("augmented",)'] if a == T else
             [f'--config.phases.refine.epochs={T - a:g}', '--config.phases.refine.lr.schedule=continue'])
    subprocess.run(argv, env=env, check=True, capture_output=True)
  t_sep = time.time() - t0
  same = all(_rows(f'{args.root}/sweep/switch{a:g}_seed0') == _rows(f'{args.root}/separate/s{a:g}')
             for a in switches)
  epochs_sweep = T + sum(T - a for a in switches if a < T)
  print(f'switches {args.switches} of a {T:g}-epoch digits run, 1 seed')
  print(f'{"":12s}{"wall s":>10s}{"epochs":>8s}{"processes":>11s}')
  n_trunk = len(set(switches))  # one trunk segment per switch epoch
  print(f'{"sweep+fork":12s}{t_sweep:10.1f}{epochs_sweep:8g}{n_trunk + sum(a < T for a in switches):11d}')
  print(f'{"separate":12s}{t_sep:10.1f}{len(switches) * T:8g}{len(switches):11d}')
  print(f'ratio {t_sweep / t_sep:.3f}; metrics.jsonl of every switch identical on both sides: {same}')


if __name__ == '__main__':
  main()
