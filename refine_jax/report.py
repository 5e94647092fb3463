"""A markdown report over finished (or running) workdirs: the paper's tables and loss / accuracy curves.

    python -m refine_jax.report WORKDIR [WORKDIR ...] [--out=DIR]

Writes DIR/report.md (DIR defaults to the first workdir) and, per run, two PNGs:
  * loss_<run>.png: train-clean, train-augmented and test cross-entropy against epoch, the start of
    refinement marked by a vertical line (the paper's Figure 1);
  * accuracy_<run>.png: test top-1 accuracy against epoch, same marker.

Tables (all numbers from each workdir's metrics.jsonl, never from the training loop):
  * test top-1 ACCURACY in % (like the paper's Tables 1 and 4): best / last / median of the last 10 evals of
    the 'augmented' phase (before refinement) and of the 'refine' phase (after refinement);
  * train cross-entropy on clean vs augmented data (R̂clean, R̂aug; the paper's Table 2) at the end of each phase.
Workdirs whose config.json agree except for the seed (and fields that do not change the experiment, such as
paths and checkpoint cadence) form one group; a group of n > 1 runs shows mean ± sample std (ddof=1) over seeds.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from typing import Optional, Sequence

from refine_jax import metrics as metrics_lib

PHASES = ('augmented', 'refine')
# config.json fields that do not change what is trained: they may differ inside a group of seeds.
IGNORED_FIELDS = frozenset({'seed', 'data_dir', 'download', 'allow_config_change', 'log_every_steps',
                            'keep_checkpoints', 'checkpoint_every_epochs', 'checkpoint_every_steps',
                            'forked_from'})  # a fork's parent and step: how it was computed, not what
FIG_SIZE_IN = (8.0, 5.0)
FIG_DPI = 100
FIG_PIXELS = (int(FIG_SIZE_IN[0] * FIG_DPI), int(FIG_SIZE_IN[1] * FIG_DPI))  # (width, height)
ACC_STATS = (('best_top1', 'best'), ('last_top1', 'last'), ('median_last10_top1', 'median of last 10'))
LOSS_STATS = (('last_train_clean_loss', 'clean CE'), ('last_train_aug_loss', 'augmented CE'))


# --------------------------------------------------------------------------- reading runs


def load_run(workdir: str) -> dict:
  """config.json + metrics.jsonl (+ summary.json if present) of one workdir."""
  config = metrics_lib.read_json(os.path.join(workdir, metrics_lib.CONFIG)) or {}
  rows = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS))
  name = os.path.abspath(workdir) if metrics_lib.is_local(workdir) else workdir
  return {'workdir': name, 'config': config, 'rows': rows,
          'summary': metrics_lib.load_summary(workdir)}


def phase_rows(rows: Sequence[dict], phase: str) -> list[dict]:
  return [r for r in rows if r.get('phase') == phase]


def experiment_fields(config: dict) -> dict:
  """The flattened config.json ('a.b' keys) without the seed and the workdir-specific fields."""
  return {k: v for k, v in _flatten(config).items() if k.split('.')[0] not in IGNORED_FIELDS}


def same_experiment(a: dict, b: dict) -> bool:
  """Whether two config.json describe the same experiment up to the seed.

  Only fields present in both are compared: a field added to the code base between two runs (absent from the
  older config.json) does not split them.
  """
  fa, fb = experiment_fields(a), experiment_fields(b)
  return all(fa[k] == fb[k] for k in fa.keys() & fb.keys())


def group_runs(runs: Sequence[dict]) -> list[list[dict]]:
  """Runs grouped by `same_experiment` with each group's first run, groups in order of first appearance."""
  groups: list[list[dict]] = []
  for r in runs:
    for g in groups:
      if same_experiment(g[0]['config'], r['config']):
        g.append(r)
        break
    else:
      groups.append([r])
  return groups


def mean_std(values: Sequence[float]) -> tuple[float, Optional[float], int]:
  """(mean, sample std with ddof=1 or None for a single value, n)."""
  vals = [float(v) for v in values]
  if not vals:
    return float('nan'), None, 0
  return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


def fmt(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
  """'mean ± std' over the values (just the value for one), or '–' for none."""
  m, s, n = mean_std([v * scale for v in values])
  if n == 0:
    return '–'
  return f'{m:.{digits}f}' if s is None else f'{m:.{digits}f} ± {s:.{digits}f}'


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def group_descriptions(groups: Sequence[list[dict]]) -> list[str]:
  """A short label per group: dataset/model/mixing, plus the config fields that differ between groups."""
  flat = [experiment_fields(g[0]['config']) for g in groups]
  shared = set.intersection(*(set(f) for f in flat)) if flat else set()
  varying = sorted(k for k in shared if any(f[k] != flat[0][k] for f in flat))
  out = []
  for f in flat:
    base = [str(f.get('dataset', '?')), str(f.get('model', '?'))]
    mix = f.get('phases.augmented.mix.kind')
    if mix is not None:
      base.append(f'aug: {mix}' + (f' + {f.get("phases.augmented.pp")}' if f.get('phases.augmented.pp') else ''))
    extra = [f'{k}={f[k]}' for k in varying
             if k not in ('dataset', 'model', 'phases.augmented.mix.kind')]
    out.append(', '.join(base) + (f' [{"; ".join(extra)}]' if extra else ''))
  return out


# --------------------------------------------------------------------------- plots


def run_names(runs: Sequence[dict]) -> list[str]:
  """File-safe, unique names: <index>_<workdir basename>."""
  return [f'{i:02d}_' + re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(r['workdir'].rstrip('/')) or 'run')
          for i, r in enumerate(runs)]


def boundary_epoch(rows: Sequence[dict]) -> Optional[float]:
  """Epoch at which refinement starts: the end of the augmented phase (its last eval), if the run has both."""
  aug, ref = phase_rows(rows, 'augmented'), phase_rows(rows, 'refine')
  return float(aug[-1]['epoch']) if aug and ref else None


def _figure():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=FIG_DPI)
  return plt, fig, ax


def _finish(plt, fig, ax, rows, path: str, title: str) -> str:
  b = boundary_epoch(rows)
  if b is not None:
    ax.axvline(b, color='k', linestyle='--', linewidth=1, label=f'refinement starts (epoch {b:g})')
  ax.set_xlabel('epoch')
  ax.set_title(title, fontsize=9)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=FIG_DPI)  # no bbox_inches='tight': the pixel size stays FIG_PIXELS
  plt.close(fig)
  return path


def plot_losses(run: dict, path: str, title: str) -> str:
  """Figure 1: train-clean, train-augmented and test cross-entropy against epoch."""
  rows = run['rows']
  plt, fig, ax = _figure()
  ep = [r['epoch'] for r in rows]
  ax.plot(ep, [r['train_clean_loss'] for r in rows], '-o', ms=2, label='train, clean (R̂clean)')
  ax.plot(ep, [r['train_aug_loss'] for r in rows], '-o', ms=2, label='train, augmented (R̂aug)')
  ax.plot(ep, [r['test_loss'] for r in rows], '-o', ms=2, label='test')
  ax.set_ylabel('cross-entropy')
  return _finish(plt, fig, ax, rows, path, title)


def plot_accuracy(run: dict, path: str, title: str) -> str:
  rows = run['rows']
  plt, fig, ax = _figure()
  ax.plot([r['epoch'] for r in rows], [100.0 * r['test_top1'] for r in rows], '-o', ms=2, label='test top-1')
  ax.set_ylabel('test top-1 accuracy (%)')
  return _finish(plt, fig, ax, rows, path, title)


# --------------------------------------------------------------------------- the report


def build_report(workdirs: Sequence[str], out_dir: str) -> str:
  """Writes out_dir/report.md and the PNGs; returns the report's path."""
  os.makedirs(out_dir, exist_ok=True)
  runs = [load_run(w) for w in workdirs]
  empty = [r['workdir'] for r in runs if not r['rows']]
  runs = [r for r in runs if r['rows']]
  if not runs:
    raise ValueError('no workdir has evaluations in metrics.jsonl: ' + ', '.join(empty))
  groups = group_runs(runs)
  desc = group_descriptions(groups)
  stats = [[{p: metrics_lib.phase_summary(phase_rows(r['rows'], p)) for p in PHASES} for r in g] for g in groups]

  def vals(gs, phase, key):
    return [s[phase][key] for s in gs if s[phase] is not None]

  def table(whens, columns, scale: float, digits: int) -> list[str]:
    """One markdown table: a row per group, `columns` for each phase (before/after refinement)."""
    head = ['group', 'n'] + [f'{when} {lab}' for when in whens for _, lab in columns]
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for gi, gs in enumerate(stats, 1):
      cells = [f'G{gi}', str(len(gs))]
      for phase in PHASES:
        cells += [fmt(vals(gs, phase, k), scale, digits) for k, _ in columns]
      out.append('| ' + ' | '.join(cells) + ' |')
    return out + ['']

  L = ['# Refined data augmentation: report', '']
  L.append('Runs are grouped by config.json without `seed` and workdir-specific fields '
           f'({", ".join(sorted(IGNORED_FIELDS - {"seed"}))}). Cells are mean ± sample std (ddof=1) over the '
           'group\'s seeds; a single run shows its value. n = number of runs (seeds).')
  L.append('')
  L.append('## Groups')
  L.append('')
  for gi, (g, d) in enumerate(zip(groups, desc), 1):
    seeds = ', '.join(f'`{r["workdir"]}` (seed {r["config"].get("seed", "?")})' for r in g)
    L.append(f'- **G{gi}**: {d}; n={len(g)}: {seeds}')
  if empty:
    L.append('')
    L.append('Skipped (no evaluations yet): ' + ', '.join(f'`{w}`' for w in empty))
  L.append('')

  L.append('## Test top-1 accuracy (%) before and after refinement (Tables 1 and 4)')
  L.append('')
  L.append('Values are test top-1 **accuracy in %** (error = 100 − accuracy). "before" = evaluations of the '
           '`augmented` phase (its end is the start of refinement); "after" = evaluations of the `refine` phase.')
  L.append('')
  L += table(('before', 'after'), ACC_STATS, 100.0, 2)

  L.append('## Training cross-entropy, clean vs augmented data (Table 2)')
  L.append('')
  L.append('R̂clean = `train_clean_loss` (training examples, eval preprocessing), R̂aug = `train_aug_loss` '
           '(the same examples under the phase\'s own augmentation), at the last evaluation of each phase. '
           'In the refine phase "augmented" therefore means the refine phase\'s augmentation (usually standard '
           'crop/flip, no mixing), not the intensive augmentation of the first phase.')
  L.append('')
  L += table(('end of augmented', 'end of refinement'), LOSS_STATS, 1.0, 4)

  L.append('## Per run')
  L.append('')
  w, h = FIG_PIXELS
  names = run_names([r for g in groups for r in g])
  i = 0
  for gi, g in enumerate(groups, 1):
    for r in g:
      name = names[i]
      i += 1
      title = f'G{gi} seed {r["config"].get("seed", "?")}: {r["workdir"]}'
      loss_png = plot_losses(r, os.path.join(out_dir, f'loss_{name}.png'), title)
      acc_png = plot_accuracy(r, os.path.join(out_dir, f'accuracy_{name}.png'), title)
      b = boundary_epoch(r['rows'])
      status = 'finished' if r['summary'] is not None else 'no summary.json yet (running or stopped)'
      L.append(f'### {name} (G{gi}, seed {r["config"].get("seed", "?")})')
      L.append('')
      L.append(f'`{r["workdir"]}`: {len(r["rows"])} evaluations, last at epoch {r["rows"][-1]["epoch"]:g}; '
               + (f'refinement starts at epoch {b:g}; ' if b is not None else '') + status + '.')
      L.append('')
      L.append(f'![losses]({os.path.basename(loss_png)}) `{os.path.basename(loss_png)}`: {w}x{h} px')
      L.append('')
      L.append(f'![accuracy]({os.path.basename(acc_png)}) `{os.path.basename(acc_png)}`: {w}x{h} px')
      L.append('')
  path = os.path.join(out_dir, 'report.md')
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write('\n'.join(L))
  os.replace(tmp, path)
  return path


def main(argv: Optional[Sequence[str]] = None) -> int:
  ap = argparse.ArgumentParser(prog='python -m refine_jax.report', allow_abbrev=False,
                               description=__doc__.split('\n')[0])
  ap.add_argument('workdirs', nargs='+', help='run workdirs (config.json, metrics.jsonl)')
  ap.add_argument('--out', default=None, help='output directory (default: the first workdir)')
  a = ap.parse_args(argv)
  from etils import epath
  missing = [w for w in a.workdirs if not epath.Path(w).is_dir()]
  if missing:
    print(f'error: not a directory: {", ".join(missing)}', file=sys.stderr)
    return 2
  if a.out is None and not metrics_lib.is_local(a.workdirs[0]):
    print(f'error: --out: the first workdir {a.workdirs[0]} is remote; pass a local --out directory for the '
          'report and plots', file=sys.stderr)
    return 2
  try:
    path = build_report(a.workdirs, a.out or a.workdirs[0])
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
