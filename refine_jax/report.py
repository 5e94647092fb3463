"""A markdown report over finished (or running) workdirs: the paper's tables and loss / accuracy curves.

    python -m refine_jax.report WORKDIR [WORKDIR ...] [--out=DIR]

Writes DIR/report.md (DIR defaults to the first workdir) and, per run, two PNGs:
  * loss_<run>.png: train-clean, train-augmented and test cross-entropy against epoch, the start of
    refinement marked by a vertical line (the paper's Figure 1);
  * accuracy_<run>.png: test top-1 accuracy against epoch, same marker;
and with `--figure1=WORKDIR` (repeated, two or more of the workdirs) figure1.png: those runs side by side, the
paper's Figure 1 (say Mixup vs Mixup + refinement of one seed): test top-1 and R̂ / R̂aug against epoch.

Tables (our numbers from each workdir's metrics.jsonl and summary.json, never from the training loop; the
paper's from refine_jax/paper.py through each run's config field `paper_row`, "—" for our extensions):
  * test top-1 ACCURACY in % (like the paper's Tables 1, 3, 4 and 5): best / last / median of the last 10 evals
    of the 'augmented' phase (before refinement) and of the 'refine' phase (after refinement), and the paper's
    row: Tables 1 and 3 "aug → ref", Table 4 "best / last", Table 5 "top-1 / top-5";
  * the paper's Table 2 in ×10⁻³: R̂aug and R̂ (train cross-entropy on augmented and clean data) at the end
    of the augmented phase and after refinement, measured over the training split at the phase's end where
    the run did (`phase_end_train_aug_loss` / `phase_end_train_clean_loss` in summary.json's phases[phase],
    else in the phase's last metrics.jsonl row that has them), else over the eval subset of `diag_examples`
    (the last eval of the phase); the table says which, and gives the paper's Table 2 row measured on the same
    runs (`paper.same_run`).
The paper column is the row the config names; a run whose overrides change the experiment (a smaller model,
fewer epochs) still shows that row, so read it as the target, not as a like-for-like number.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from typing import Optional, Sequence

from refine_jax import cli
from refine_jax import fields
from refine_jax import metrics as metrics_lib
from refine_jax import paper as paper_lib
from refine_jax import workdir as workdir_lib
from refine_jax.errors import BadInput

PHASES = ('augmented', 'refine')
FIG_SIZE_IN = (8.0, 5.0)
FIG_DPI = 100
FIG_PIXELS = (int(FIG_SIZE_IN[0] * FIG_DPI), int(FIG_SIZE_IN[1] * FIG_DPI))  # (width, height)
FIG1_SIZE_IN = (12.0, 4.5)  # figure1.png: two panels
FIG1_PIXELS = (int(FIG1_SIZE_IN[0] * FIG_DPI), int(FIG1_SIZE_IN[1] * FIG_DPI))
ACC_STATS = metrics_lib.summary_stats('test_top1')  # (summary key, label): best, last, median of last 10


def _loss_stats() -> tuple[tuple[str, str, str], ...]:
  """Table 2's columns per phase, in the paper's order (R̂aug, then R̂): (whole-split key in summary.json's
  phases[phase], eval-subset key of metrics.phase_summary, label), from the metrics' declarations."""
  out = []
  for sums in ('aug', 'clean'):
    m = next(m for m in metrics_lib.EVAL_METRICS if m.sums == sums and m.sum == 'loss')
    whole = next(e for e in metrics_lib.PHASE_END_METRICS if e.sums == sums)
    out.append((whole.name, next(k for k, agg in m.summary if agg == 'last'), m.label))
  return tuple(out)


LOSS_STATS = _loss_stats()
TABLE2_SCALE = 1e3  # the paper prints Table 2 in units of 10⁻³
NO_PAPER = '—'  # the paper column of an extension (no paper_row) or of a value the paper does not give


# --------------------------------------------------------------------------- reading runs


def workdir_key(workdir: str) -> str:
  """How a report names a workdir: its absolute path (a remote one as given)."""
  return workdir_lib.key(workdir)


def load_run(workdir: str) -> dict:
  """config.json + metrics.jsonl (+ summary.json if present) of one workdir."""
  return {'workdir': workdir_key(workdir), 'config': workdir_lib.read_config(workdir) or {},
          'rows': workdir_lib.read_rows(workdir), 'summary': workdir_lib.read_summary(workdir)}


def phase_rows(rows: Sequence[dict], phase: str) -> list[dict]:
  return [r for r in rows if r.get('phase') == phase]


def experiment_fields(config: dict) -> dict:
  """The flattened config.json ('a.b' keys), completed with the declared defaults, without the fields whose role
  lets runs of one experiment differ (the seed, bookkeeping)."""
  flat = fields.flatten(fields.complete(config))
  return {k: v for k, v in flat.items() if fields.role(k) not in fields.SAME_EXPERIMENT_MAY_DIFFER}


def same_experiment(a: dict, b: dict) -> bool:
  """Whether two config.json describe the same experiment up to the seed and bookkeeping (`fields` roles); a
  field one of them lacks (added to the code base between two runs) counts at its declared default."""
  return not fields.differences(a, b, fields.SAME_EXPERIMENT_MAY_DIFFER)


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


def check_distinct(groups: Sequence[list[dict]]) -> None:
  """Refuses a group holding the same run twice: one workdir given twice, or two runs of one experiment and one
  seed (a fork and a run from scratch of the same config train the same bits), which would count as two seeds."""
  for g in groups:
    seen: dict = {}
    for r in g:
      key = fields.plain(r['config'].get('seed'))
      if key in seen:
        other = seen[key]['workdir']
        what = 'is given twice' if other == r['workdir'] else f'and {other} are the same run'
        raise BadInput(f'{r["workdir"]} {what} (one experiment, seed {key}): a report counts each run once, and '
                       'the seeds of a group are its replicates; pass each run once')
      seen[key] = r


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


def group_descriptions(groups: Sequence[list[dict]]) -> list[str]:
  """A short label per group: dataset/model/mixing, plus the config fields that differ between groups."""
  flat = [experiment_fields(g[0]['config']) for g in groups]
  shared = set.intersection(*(set(f) for f in flat)) if flat else set()
  varying = sorted(k for k in shared if any(fields.plain(f[k]) != fields.plain(flat[0][k]) for f in flat))
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


# --------------------------------------------------------------------------- the paper's numbers

# Per table: (augmented columns, refined columns, what they are) of refine_jax/paper.py's COLUMNS.
_PAPER_ACC = {1: (('aug',), ('ref',), ''), 3: (('aug',), ('ref',), ''), 0: (('aug',), ('ref',), ''),
              4: (('aug_best', 'aug_last'), ('ref_best', 'ref_last'), 'best / last'),
              5: (('aug_top1', 'aug_top5'), ('ref_top1', 'ref_top5'), 'top-1 / top-5'),
              6: (('aug',), ('ref',), 'mAP')}
_PAPER_T2 = ('aug_raug', 'aug_r', 'ref_raug', 'ref_r')  # the order of LOSS_STATS over PHASES


def _num(v: Optional[float]) -> str:
  return NO_PAPER if v is None else f'{v:g}'


def paper_accuracy(config: dict) -> str:
  """The paper's numbers of the config's `paper_row`, as its table gives them, e.g. 'T1: 78.95 → 80.85' or
  'T4 best / last: 63.18 / 63.08 → 64.54 / 64.2' ("aug → ref"; only "aug" for a run without a refine phase);
  NO_PAPER for an extension."""
  key = config.get('paper_row')
  if not key:
    return NO_PAPER
  r = paper_lib.row(key)
  aug, ref, what = _PAPER_ACC[r.table]
  text = ' / '.join(_num(r.value(c)) for c in aug)
  if 'refine' in (config.get('phase_order') or PHASES) and any(r.value(c) is not None for c in ref):
    text += ' → ' + ' / '.join(_num(r.value(c)) for c in ref)
  return f'T{r.table}' + (f' {what}' if what else '') + f': {text}'


def paper_table2(config: dict) -> list[str]:
  """The paper's Table 2 cells (×10⁻³, in _PAPER_T2's order) of the row measured on the config's runs."""
  key = config.get('paper_row')
  rows = [] if not key else [r for r in (paper_lib.row(key),) + paper_lib.same_run(key) if r.table == 2]
  return [_num(rows[0].value(c)) if rows else NO_PAPER for c in _PAPER_T2]


def phase_end_loss(run: dict, phase: str, whole_key: str, subset_key: str) -> tuple[Optional[float], str]:
  """(value, source): the phase-end measurement over the training split (summary.json's phases[phase], else
  the phase's last metrics.jsonl row that has it; source 'whole' or 'whole:N' with N = `phase_end_examples`),
  else the phase's last eval on the diag subset ('subset'); (None, 'none') without evals of the phase."""
  rows = phase_rows(run['rows'], phase)
  found = [((run['summary'] or {}).get('phases') or {}).get(phase) or {}] + [r for r in rows[::-1] if whole_key in r]
  for rec in found:
    if rec.get(whole_key) is not None:
      n = rec.get('phase_end_examples')
      return float(rec[whole_key]), 'whole' if n is None else f'whole:{n}'
  s = metrics_lib.phase_summary(rows)
  return (None, 'none') if s is None else (float(s[subset_key]), 'subset')


def table2_source(sources: set[str], config: dict) -> str:
  """What a group's Table 2 cells were measured over, from phase_end_loss's sources."""
  got = sources - {'none'}
  whole = sorted({s.split(':', 1)[1] for s in got if s.startswith('whole:')}, key=int)
  where = 'training split at the phase end' + (f' ({", ".join(whole)} examples)' if whole else '')
  if got and all(s.startswith('whole') for s in got):
    return where
  if got == {'subset'}:
    return f'eval subset ({config.get("diag_examples", "?")} examples)'
  return f'mixed: {where} where measured, else the eval subset' if got else '–'


# --------------------------------------------------------------------------- plots


def run_names(runs: Sequence[dict]) -> list[str]:
  """File-safe, unique names: <index>_<workdir basename>."""
  return [f'{i:02d}_' + re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(r['workdir'].rstrip('/')) or 'run')
          for i, r in enumerate(runs)]


def boundary_epoch(rows: Sequence[dict]) -> Optional[float]:
  """Epoch at which refinement starts: the end of the augmented phase (its last eval), if the run has both."""
  aug, ref = phase_rows(rows, 'augmented'), phase_rows(rows, 'refine')
  return float(aug[-1]['epoch']) if aug and ref else None


def _figure(size_in: tuple[float, float] = FIG_SIZE_IN, ncols: int = 1):
  """(pyplot, figure, axes) on the non-interactive backend: one axes, or a tuple of `ncols`."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, ncols, figsize=size_in, dpi=FIG_DPI)
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
  for name, label in (('train_clean_loss', f'train, clean ({metrics_lib.label("train_clean_loss")})'),
                      ('train_aug_loss', f'train, augmented ({metrics_lib.label("train_aug_loss")})'),
                      ('test_loss', 'test')):
    ax.plot(ep, [r[name] for r in rows], '-o', ms=2, label=label)
  ax.set_ylabel('cross-entropy')
  return _finish(plt, fig, ax, rows, path, title)


def plot_accuracy(run: dict, path: str, title: str) -> str:
  rows = run['rows']
  plt, fig, ax = _figure()
  ax.plot([r['epoch'] for r in rows], [100.0 * r['test_top1'] for r in rows], '-o', ms=2, label='test top-1')
  ax.set_ylabel('test top-1 accuracy (%)')
  return _finish(plt, fig, ax, rows, path, title)


def figure1_series(run: dict) -> dict:
  """What figure1.png draws of one run: per eval row its epoch, test top-1 in %, R̂ and R̂aug."""
  rows = run['rows']
  return {'epoch': [r['epoch'] for r in rows], 'top1': [100.0 * r['test_top1'] for r in rows],
          'R': [r['train_clean_loss'] for r in rows], 'Raug': [r['train_aug_loss'] for r in rows],
          'refine_starts': boundary_epoch(rows)}


def plot_figure1(runs: Sequence[dict], labels: Sequence[str], path: str) -> str:
  """The paper's Figure 1 for several runs: test top-1 (left), R̂ solid and R̂aug dashed on a log scale (right),
  against epoch; each run's start of refinement dotted in its colour. The first run is drawn wide and pale so
  that runs forked from it, which share its curve up to their switch, show on top of it."""
  plt, fig, (ax_a, ax_l) = _figure(FIG1_SIZE_IN, ncols=2)
  for i, (run, lab) in enumerate(zip(runs, labels)):
    s, col = figure1_series(run), f'C{i}'
    kw = {'color': col, 'linewidth': 4.0 if i == 0 else 1.5, 'alpha': 0.45 if i == 0 else 1.0}
    ax_a.plot(s['epoch'], s['top1'], '-', label=lab, **kw)
    ax_l.plot(s['epoch'], s['R'], '-', label=f'{lab}: {metrics_lib.label("train_clean_loss")}', **kw)
    ax_l.plot(s['epoch'], s['Raug'], '--', label=f'{lab}: {metrics_lib.label("train_aug_loss")}', **kw)
    if s['refine_starts'] is not None:
      for ax in (ax_a, ax_l):
        ax.axvline(s['refine_starts'], color=col, linestyle=':', linewidth=1.0)
  for ax in (ax_a, ax_l):
    ax.set_xlabel('epoch')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  ax_a.set_ylabel('test top-1 accuracy (%)')
  ax_a.set_title('test accuracy (dotted: refinement starts)', fontsize=9)
  ax_l.set_ylabel('training cross-entropy')
  ax_l.set_yscale('log')
  ax_l.set_title('clean (R̂) vs augmented (R̂aug) training loss', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=FIG_DPI)
  plt.close(fig)
  return path


# --------------------------------------------------------------------------- the report


def build_report(workdirs: Sequence[str], out_dir: str, figure1: Sequence[str] = ()) -> str:
  """Writes out_dir/report.md and the PNGs (figure1.png of the workdirs in `figure1`, two or more of
  `workdirs`, when given); returns the report's path."""
  figure1 = [workdir_key(w) for w in figure1]
  stray = [w for w in figure1 if w not in {workdir_key(x) for x in workdirs}]
  if stray or len(figure1) == 1:
    raise BadInput('--figure1: give two or more of the report\'s workdirs' +
                     (f'; not among them: {", ".join(stray)}' if stray else ''))
  runs = [load_run(w) for w in workdirs]
  empty = [r['workdir'] for r in runs if not r['rows']]
  runs = [r for r in runs if r['rows']]
  if not runs:
    raise BadInput('no workdir has evaluations in metrics.jsonl: ' + ', '.join(empty))
  groups = group_runs(runs)
  check_distinct(groups)
  os.makedirs(out_dir, exist_ok=True)
  desc = group_descriptions(groups)
  stats = [[{p: metrics_lib.phase_summary(phase_rows(r['rows'], p)) for p in PHASES} for r in g] for g in groups]

  def vals(gs, phase, key):
    return [s[phase][key] for s in gs if s[phase] is not None]

  def table(whens, columns, scale: float, digits: int) -> list[str]:
    """One markdown table: a row per group, `columns` for each phase (before/after refinement)."""
    head = ['group', 'n'] + [f'{when} {lab}' for when in whens for _, lab in columns] + ['paper']
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for gi, (g, gs) in enumerate(zip(groups, stats), 1):
      cells = [f'G{gi}', str(len(gs))]
      for phase in PHASES:
        cells += [fmt(vals(gs, phase, k), scale, digits) for k, _ in columns]
      out.append('| ' + ' | '.join(cells + [paper_accuracy(g[0]['config'])]) + ' |')
    return out + ['']

  def table2() -> list[str]:
    """The paper's Table 2: R̂aug and R̂ ×10⁻³ per phase, which measurement, and the paper's row."""
    ours = [f'{when} {lab}' for when in ('end of augmented', 'after refinement') for _, _, lab in LOSS_STATS]
    head = ['group', 'n'] + ours + ['measured over'] + [f'paper {c}' for c in ours]
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for gi, g in enumerate(groups, 1):
      cells, sources = [f'G{gi}', str(len(g))], set()
      for phase in PHASES:
        for whole_key, subset_key, _ in LOSS_STATS:
          got = [phase_end_loss(r, phase, whole_key, subset_key) for r in g]
          sources |= {s for _, s in got}
          cells.append(fmt([v for v, _ in got if v is not None], TABLE2_SCALE, 2))
      cells.append(table2_source(sources, g[0]['config']))
      out.append('| ' + ' | '.join(cells + paper_table2(g[0]['config'])) + ' |')
    return out + ['']

  L = ['# Refined data augmentation: report', '']
  L.append('Runs are grouped by config.json without `seed` and workdir-specific fields '
           f'({", ".join(fields.names_with(fields.SAME_EXPERIMENT_MAY_DIFFER - {fields.Role.SEED}))}). Cells are mean ± sample std (ddof=1) over the '
           'group\'s seeds; a single run shows its value. n = number of runs (seeds).')
  L.append('')
  L.append('## Groups')
  L.append('')
  for gi, (g, d) in enumerate(zip(groups, desc), 1):
    seeds = ', '.join(f'`{r["workdir"]}` (seed {r["config"].get("seed", "?")})' for r in g)
    row = g[0]['config'].get('paper_row')
    L.append(f'- **G{gi}**: {d}; paper row `{row}`' if row else f'- **G{gi}**: {d}; no paper row (extension)')
    L[-1] += f'; n={len(g)}: {seeds}'
  if empty:
    L.append('')
    L.append('Skipped (no evaluations yet): ' + ', '.join(f'`{w}`' for w in empty))
  L.append('')

  L.append('## Test top-1 accuracy (%) before and after refinement (Tables 1, 3, 4 and 5)')
  L.append('')
  L.append('Values are test top-1 **accuracy in %** (error = 100 − accuracy). "before" = evaluations of the '
           '`augmented` phase (its end is the start of refinement); "after" = evaluations of the `refine` phase. '
           '"paper": the row the group\'s config names (`paper_row`), "aug → ref" as its table gives it (T1, T3: '
           'the median of the last 10 epochs, mean of 3 runs, compare with our median column; T4: best / last; '
           'T5: top-1 / top-5); "—" for an extension. A config overridden to a smaller run still names its row.')
  L.append('')
  L += table(('before', 'after'), ACC_STATS, 100.0, 2)

  L.append('## Training cross-entropy ×10⁻³, augmented vs clean data (Table 2)')
  L.append('')
  L.append('Cross-entropy in units of 10⁻³ (1.5 means 0.0015), as the paper prints its Table 2. R̂aug = '
           '`train_aug_loss` (training examples under the phase\'s own augmentation), R̂ = `train_clean_loss` (the '
           'same examples, eval preprocessing), at the end of the augmented phase and after refinement. "measured '
           'over": the training split at the end of each phase (`phase_end_train_aug_loss`, '
           '`phase_end_train_clean_loss` in summary.json or the phase\'s last metrics.jsonl row) when the run '
           'measured it, else the last evaluation\'s fixed subset of `diag_examples` training examples. After '
           'refinement R̂aug is under the refine phase\'s augmentation (standard crop/flip, no mixing), as in the '
           'paper. The paper columns are its Table 2 row measured on the same runs (CIFAR-100 PreActResNet-18 rows '
           'only; "—" elsewhere).')
  L.append('')
  L += table2()

  ordered = [r for g in groups for r in g]  # the runs in the report's order, and their file names
  names = run_names(ordered)
  fig_runs = [r for w in figure1 for r in runs if r['workdir'] == w]
  if figure1 and len(fig_runs) == len(figure1):
    names_of = {r['workdir']: n for r, n in zip(ordered, names)}
    png = plot_figure1(fig_runs, [names_of[r['workdir']] for r in fig_runs], os.path.join(out_dir, 'figure1.png'))
    L += ['## Figure 1: the runs side by side', '',
          f'![figure 1]({os.path.basename(png)}) `{os.path.basename(png)}`: {FIG1_PIXELS[0]}x{FIG1_PIXELS[1]} px: '
          + ', '.join(f'`{r["workdir"]}`' for r in fig_runs), '']
  elif figure1:
    L += ['## Figure 1: the runs side by side', '', 'Not drawn: ' + ', '.join(
        f'`{w}`' for w in figure1 if w not in {r['workdir'] for r in fig_runs}) + ' has no evaluations yet.', '']

  L.append('## Per run')
  L.append('')
  w, h = FIG_PIXELS
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
  """The command: its exit code (`cli.guarded`: bad input 2, a stop by SIGTERM 3)."""
  return cli.guarded(_main, sys.argv[1:] if argv is None else argv)


def _main(argv: Sequence[str]) -> int:
  ap = argparse.ArgumentParser(prog='python -m refine_jax.report', allow_abbrev=False,
                               description=__doc__.split('\n')[0])
  ap.add_argument('workdirs', nargs='+', help='run workdirs (config.json, metrics.jsonl)')
  ap.add_argument('--out', default=None, help='output directory (default: the first workdir)')
  ap.add_argument('--figure1', action='append', default=[], metavar='WORKDIR',
                  help='repeated, two or more of the workdirs: figure1.png draws them side by side')
  a = ap.parse_args(argv)
  from etils import epath
  missing = [w for w in a.workdirs if not epath.Path(w).is_dir()]
  if missing:
    raise BadInput(f'not a directory: {", ".join(missing)}')
  if a.out is None and not workdir_lib.is_local(a.workdirs[0]):
    raise BadInput(f'--out: the first workdir {a.workdirs[0]} is remote; pass a local --out directory for the '
                   'report and plots')
  print(build_report(a.workdirs, a.out or a.workdirs[0], a.figure1))
  return 0


if __name__ == '__main__':
  sys.exit(main())
