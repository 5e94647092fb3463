"""A small Table 1 on real CIFAR-10, in the regime the paper studies, on a 2-core CPU; arms sharing a trunk are
forked from it (`refine_jax.fork`), each seed paired across arms.

    python bench/evidence.py [--data_dir=../shared/data/tensorflow_datasets] [--seeds=0,1,2] [--epochs=T]
        [--refine_epochs=r] [--train_split=train[:N]] [--width=W] [--batch=B] [--pp=OPS] [--eval_every=E]
        [--root=bench/out/evidence3] [--dry_run] [--probe] [--no_record]

The defaults are the point the probes of 2026-12-02 chose (bench/RESULTS.md): resnet_tiny width 16 on the first
1,000 training images, batch 32, T = 80, r = 10, flip-only standard augmentation. There the standard arm fits
its training set (final R̂ 0.019; with `pad_crop(32,4)|flip_lr` the same model ended at 0.76, far from the
paper's regime), and the table takes about an hour on the 2-core machine.

Per seed s (the same seed = the same data order and keys until arms diverge):
  standard          configs/cifar10_preact18_standard.py, T epochs (one phase)
  mixup             configs/cifar10_preact18_mixup.py, Mixup T epochs (the trunk; checkpoints at T - r and T)
  mixup_ref         fork of `mixup` at epoch T: + refinement r epochs       (Table 1's protocol: extra epochs)
  mixup_budget      fork of `mixup` at epoch T - r: refinement r epochs     (Figure 4's fixed budget of T)
  cutmix            configs/cifar10_preact18_cutmix.py, CutMix T epochs (the trunk)
  cutmix_ref        fork of `cutmix` at epoch T: + refinement r epochs
Every run: `resnet_tiny` of width W on the first N training images, evaluated on the full 10,000-image test
split; lr 0.1 ÷10 at 40 % and 70 % of T (the paper's 150 / 275 of 400, rounded); refinement at the final rate
0.001 (the paper's refinement rate for these schedules); batch B; host ops `--pp` in every phase (Mixup / CutMix
act on top of them in the augmented phase, refinement trains on them alone). Cost per seed: 3T + 3r epochs instead of
the 4T + 4r of separate runs.

Statistics: per arm, over seeds, mean ± std of the final test top-1 and of the median of the evals in the last
r epochs (the paper's "median of the last 10 epochs", over the same window for every arm; for a refined arm the
evals after its switch), the last R̂ / R̂aug
(the eval rows' diagnostics), and per seed the paired differences refined − unrefined. Every run is listed.
`--probe` runs only `standard` and `mixup` of the first seed and prints the regime check: the standard arm's
final R̂ (the paper's regime needs it near 0: ≤ 0.05) and Mixup's R̂aug / R̂ at the switch (≫ 1).
Resumable: finished runs (summary.json at their last step) are skipped, unfinished ones resumed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench import common  # noqa: E402
from refine_jax import report as report_lib  # noqa: E402
from refine_jax import workdir as workdir_lib  # noqa: E402

CONFIGS = {'standard': 'cifar10_preact18_standard.py', 'mixup': 'cifar10_preact18_mixup.py',
           'cutmix': 'cifar10_preact18_cutmix.py'}
# arm: (config, augmented epochs, refine epochs, parent arm, fork epoch) as functions of (T, r).
ARMS = {
    'standard': lambda T, r: ('standard', T, 0, None, None),
    'mixup': lambda T, r: ('mixup', T, 0, None, None),
    'mixup_ref': lambda T, r: ('mixup', T, r, 'mixup', T),
    'mixup_budget': lambda T, r: ('mixup', T - r, r, 'mixup', T - r),
    'cutmix': lambda T, r: ('cutmix', T, 0, None, None),
    'cutmix_ref': lambda T, r: ('cutmix', T, r, 'cutmix', T),
}
LABELS = {'standard': 'Standard (T)', 'mixup': 'Mixup (T)', 'mixup_ref': 'Mixup (T) + refinement (r)',
          'mixup_budget': 'Mixup (T − r) + refinement (r)', 'cutmix': 'CutMix (T)',
          'cutmix_ref': 'CutMix (T) + refinement (r)'}
PAIRS = (('mixup_ref', 'mixup'), ('mixup_budget', 'mixup'), ('cutmix_ref', 'cutmix'), ('mixup_ref', 'standard'))


def workdir(a, arm: str, seed: int) -> str:
  return os.path.join(a.root, f'{arm}_seed{seed}')


def overrides(a, arm: str, seed: int) -> list[str]:
  cfg, aug, ref, _, _ = ARMS[arm](a.epochs, a.refine_epochs)
  b = (round(0.4 * a.epochs), round(0.7 * a.epochs))
  out = [f'--config.data_dir={a.data_dir}', '--config.model=resnet_tiny', f"--config.model_kwargs={{'width': {a.width}}}",
         f'--config.train_split={a.train_split}', '--config.eval_split=test', f'--config.seed={seed}',
         f'--config.batch_size={a.batch}', '--config.eval_batch_size=500', f'--config.diag_examples={a.diag}',
         f'--config.phases.augmented.epochs={aug}', f'--config.phases.augmented.lr.boundaries_epochs={b}',
         f'--config.eval_every_epochs={a.eval_every}', f'--config.checkpoint_every_epochs={a.refine_epochs}',
         '--config.keep_checkpoints=1000', '--config.log_every_steps=1000', f'--config.phases.augmented.pp={a.pp}']
  if ref:
    out += ["--config.phase_order=('augmented', 'refine')", f'--config.phases.refine.epochs={ref}',
            '--config.phases.refine.lr.base=0.001', f'--config.phases.refine.pp={a.pp}']
  else:
    out += ["--config.phase_order=('augmented',)"]
  return out


def command(a, arm: str, seed: int) -> list[str]:
  cfg, _, _, parent, at = ARMS[arm](a.epochs, a.refine_epochs)
  w = workdir(a, arm, seed)
  base = [f'--config=configs/{CONFIGS[cfg]}', f'--workdir={w}', *overrides(a, arm, seed)]
  if parent is None or os.path.isdir(w):  # a fork that exists already resumes like any run
    return [sys.executable, '-m', 'refine_jax.main', *base]
  return [sys.executable, '-m', 'refine_jax.fork', f'--from={workdir(a, parent, seed)}', f'--at_epoch={at}', *base]


def finished(w: str) -> bool:
  """Whether the run in `w` has ended: summary.json written and metrics.jsonl's last eval at its last step."""
  run = report_lib.load_run(w)
  return bool(run['summary'] and run['rows']) and run['rows'][-1]['step'] == run['summary'].get('total_steps')


def run_stats(run: dict, window_epochs: float) -> dict:
  rows = run['rows']
  end = rows[-1]['epoch']
  window = [r['test_top1'] for r in rows if r['epoch'] > end - window_epochs + 1e-9]  # after a refined arm's switch
  aug = [r for r in rows if r['phase'] == 'augmented'][-1]
  return {'final_top1': rows[-1]['test_top1'], 'median_window_top1': statistics.median(window),
          'window_evals': len(window), 'R': rows[-1]['train_clean_loss'], 'Raug': rows[-1]['train_aug_loss'],
          'switch_R': aug['train_clean_loss'], 'switch_Raug': aug['train_aug_loss'],
          'forked_from': run['config'].get('forked_from'), 'epochs': end}


def interval(d: list[float]) -> str:
  """The 95 % confidence interval of the mean paired difference (Student's t, n − 1 degrees of freedom), in
  points; an interval that contains 0 means no significant difference at that level."""
  if len(d) < 2:
    return '–'
  from scipy import stats as st
  m, half = statistics.mean(d), st.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
  return f'[{100 * (m - half):+.2f}, {100 * (m + half):+.2f}]'


def tables(a, stats: dict, seeds: list[int]) -> str:
  T, r = a.epochs, a.refine_epochs
  lines = [f'Setting: resnet_tiny width {a.width}, CIFAR-10 `{a.train_split}`, test on all 10,000, T = {T}, '
           f'r = {r}, batch {a.batch}, lr 0.1 ÷10 at epochs {round(0.4 * T)} and {round(0.7 * T)}, refinement '
           f'at 0.001, standard augmentation `{a.pp}` in every phase, seeds {",".join(map(str, seeds))}. Top-1 in '
           f'%; R̂ / R̂aug are cross-entropies on {a.diag} training images (the eval rows).', '',
           f'| arm | final test top-1 | median of the evals in the last {r} epochs | last R̂ | last R̂aug | '
           'per-seed final top-1 | forked from |', '|---|---|---|---|---|---|---|']
  for arm in ARMS:
    got = [stats[(arm, s)] for s in seeds if (arm, s) in stats]
    if not got:
      continue
    forks = ', '.join(f'step {g["forked_from"]["step"]} of {os.path.basename(g["forked_from"]["workdir"])}'
                      for g in got if g['forked_from'])
    lines.append(f'| {LABELS[arm]} | {report_lib.fmt([g["final_top1"] for g in got], 100.0)} | '
                 f'{report_lib.fmt([g["median_window_top1"] for g in got], 100.0)} | {report_lib.fmt([g["R"] for g in got], 1.0, 4)} | '
                 f'{report_lib.fmt([g["Raug"] for g in got], 1.0, 4)} | '
                 + ', '.join(f'{100 * g["final_top1"]:.2f}' for g in got)
                 + f' | {forks or "—"} |')
  lines += ['', '| paired difference (same seed) | final top-1, mean ± std (pp) | 95 % interval, paired t (pp) | '
            f'per seed (pp) | median of last {r} epochs, mean ± std (pp) | 95 % interval (pp) |',
            '|---|---|---|---|---|---|']
  for x, y in PAIRS:
    common_seeds = [s for s in seeds if (x, s) in stats and (y, s) in stats]
    if not common_seeds:
      continue
    d = [stats[(x, s)]['final_top1'] - stats[(y, s)]['final_top1'] for s in common_seeds]
    dm = [stats[(x, s)]['median_window_top1'] - stats[(y, s)]['median_window_top1'] for s in common_seeds]
    lines.append(f'| {LABELS[x]} − {LABELS[y]} | {report_lib.fmt(d, 100.0)} | {interval(d)} | '
                 + ', '.join(f'{100 * v:+.2f}' for v in d) + f' | {report_lib.fmt(dm, 100.0)} | {interval(dm)} |')
  return '\n'.join(lines)


def regime(stats: dict, seeds: list[int]) -> str:
  std = [stats[('standard', s)]['R'] for s in seeds if ('standard', s) in stats]
  mix = [(stats[('mixup', s)]['switch_Raug'], stats[('mixup', s)]['switch_R']) for s in seeds
         if ('mixup', s) in stats]
  out = []
  if std:
    out.append(f'standard arm final R̂: {", ".join(f"{v:.4f}" for v in std)} (regime needs ≤ 0.05: '
               f'{"met" if max(std) <= 0.05 else "NOT met"})')
  if mix:
    out.append('Mixup at the switch, R̂aug / R̂: ' + ', '.join(f'{ra:.3f} / {rc:.4f} = {ra / rc:.1f}'
                                                             for ra, rc in mix))
  return '\n'.join(out)


def report(a, seeds: list[int]) -> str:
  """`refine_jax.report` over every run (Tables 1 and 2 per arm, a PNG pair per run) with Figure 1 for the first
  seed: Mixup (T) against the two refined arms forked from it. Returns the report's path."""
  runs = [workdir(a, arm, s) for s in seeds for arm in ARMS if os.path.isdir(workdir(a, arm, s))]
  fig = [w for w in (workdir(a, arm, seeds[0]) for arm in ('mixup', 'mixup_ref', 'mixup_budget')) if w in runs]
  return report_lib.build_report(runs, os.path.join(a.root, 'report'), fig if len(fig) > 1 else ())


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--data_dir', default=os.path.join(os.path.dirname(ROOT), 'shared/data/tensorflow_datasets'))
  ap.add_argument('--seeds', default='0,1,2')
  ap.add_argument('--epochs', type=int, default=80)
  ap.add_argument('--refine_epochs', type=int, default=10)
  ap.add_argument('--train_split', default='train[:1000]')
  ap.add_argument('--width', type=int, default=16)
  ap.add_argument('--batch', type=int, default=32)
  ap.add_argument('--pp', default='flip_lr', help="host ops of every training phase: the standard "
                  "augmentation (Mixup / CutMix act on top of it in the augmented phase)")
  ap.add_argument('--diag', type=int, default=1000)
  ap.add_argument('--eval_every', type=float, default=2.0)
  ap.add_argument('--root', default=os.path.join(ROOT, 'bench', 'out', 'evidence3'))
  ap.add_argument('--probe', action='store_true', help='only standard and mixup of the first seed')
  ap.add_argument('--dry_run', action='store_true')
  ap.add_argument('--no_record', action='store_true')
  a = ap.parse_args()
  if a.epochs % a.refine_epochs or a.refine_epochs >= a.epochs:
    ap.error('--epochs must be a multiple of --refine_epochs and larger (checkpoints every r epochs)')
  seeds = [int(s) for s in a.seeds.split(',')]
  arms = ('standard', 'mixup') if a.probe else tuple(ARMS)
  seeds = seeds[:1] if a.probe else seeds
  t0, stats, walls = time.time(), {}, {}
  for seed in seeds:
    for arm in arms:
      w, cmd = workdir(a, arm, seed), command(a, arm, seed)
      if a.dry_run:
        print(' '.join(cmd))
        continue
      if not finished(w):
        t = time.time()
        print(' '.join(cmd), flush=True)
        os.makedirs(a.root, exist_ok=True)
        with open(w + '.log', 'a') as log:
          subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=log)
        walls[(arm, seed)] = time.time() - t
      stats[(arm, seed)] = run_stats(report_lib.load_run(w), a.refine_epochs)
  if a.dry_run:
    return
  wall = time.time() - t0
  table = tables(a, stats, seeds) + '\n\nRegime check:\n' + regime(stats, seeds)
  table += (f'\n\nWall time of this invocation: {wall:.0f} s ({len(walls)} runs trained now: '
            + ', '.join(f'{k[0]}_seed{k[1]} {v:.0f} s' for k, v in walls.items()) + ').')
  if not a.probe:
    md = report(a, seeds)
    png = os.path.join(os.path.dirname(md), 'figure1.png')
    table += (f'\n\nReport (`refine_jax.report` over every run): `{os.path.relpath(md, ROOT)}`; Figure 1 '
              f'(seed {seeds[0]}, Mixup (T) vs the refined arms forked from it): `{os.path.relpath(png, ROOT)}`.')
  print(table)
  with open(os.path.join(a.root, 'evidence.json'), 'w') as f:
    json.dump(workdir_lib.finite_or_none({f'{k[0]}_seed{k[1]}': v for k, v in stats.items()}), f, indent=1,
              allow_nan=False)
  if not a.no_record:
    common.append('Evidence: Table 1 in the paper\'s regime, CIFAR-10 (CPU)' + (' — probe' if a.probe else ''),
                  table, ('jax', 'flax', 'tensorflow'))


if __name__ == '__main__':
  main()
