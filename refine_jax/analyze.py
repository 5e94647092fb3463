"""Analyses of finished runs: feature spectra (paper's Figure 3) and the switch-epoch ablation (Figure 4).

    python -m refine_jax.analyze spectrum --workdir=W1 [--workdir=W2 ...] [--label=L1 --label=L2 ...] \
        [--matrix=scatter|covariance] [--min_per_class=500] [--class_index=0] [--examples=N] [--out=PNG]
    python -m refine_jax.analyze sweep --config=C --workdir_root=R --total_epochs=T --switch_epochs=a,b,c \
        --seeds=0,1,2 [--dry_run] [--config.FIELD=VALUE ...]
    python -m refine_jax.analyze sweep_plot --workdir_root=R --out=PNG

spectrum (Figure 3): singular values, largest to smallest, of the scatter matrix of the penultimate features
  (the `intermediates/features` every model sows) of class `--class_index` (intra-class, centred on the class
  mean) and of all classes (centred on the overall mean), over the run's WHOLE training split (or its first
  `--examples`) under the eval preprocessing, with the eval-mode model rebuilt from config.json in float32; for
  each run's checkpoint at the end of the augmented phase and its final checkpoint (one curve when the run has
  no refinement). Runs are given by repeating `--workdir` (paths may hold commas); `--label` names them.
  The figure has two rows (the class, all classes) and a column with every run overlaid followed by one column
  per run, the paper's panels (Standard; Mixup and its refinement; AutoAugment and its refinement).
  The matrix: `scatter` (default) S = Σ (x − μ)(x − μ)ᵀ, or `covariance` S / (n − 1). The paper says
  "covariance", but its axes (class 0 ×10³, all classes ×10⁵ on CIFAR-100's 500-per-class, 50,000-example
  training split) are a factor ~100 = 50,000 / 500 apart, what the scatter's growth with n gives and the
  covariance's normalisation would remove; hence the default. Axis labels name the matrix, and linear axes are
  scaled by a power of ten like the paper's.
  A split with fewer than `--min_per_class` (default 500, CIFAR-100's per-class count) examples in any class is
  refused, exit 2, before any feature is computed (from the labels where the split is in memory) and with
  nothing written: n examples give a matrix of rank ≤ n − 1, a spectrum cut short (5,000 CIFAR-100 examples
  leave ~50 per class against 512 dimensions).
  Writes the PNG and a JSON next to it (same name, .json): the matrix and its definition, per run and
  checkpoint the spectra and their ranks (values above RANK_RTOL × the largest), the class counts, and what each
  panel drew.
sweep: the runs of the ablation as the paper ran it: one run of T epochs whose Mixup is switched off at epoch a
  (augmented epochs = a, refine epochs = T − a; a = T means no refinement), the learning rate that of the whole
  run (refine lr schedule 'continue': the augmented phase's boundaries, in global epochs, still apply after the
  switch), one per seed, in R/switch{a}_seed{s}. Each seed's trunk is trained once, in one process
  (R/trunk/seed{s}, checkpoints kept at every switch: `fork_points_epochs`), and every switch is forked from it
  (`refine_jax.fork`): max(a) + Σ(T − a) epochs instead of N·T.
  Prints the commands (--dry_run) or runs them in order. Extra `--config.FIELD=VALUE` arguments are passed to
  every run. The runs share a persistent XLA compilation cache in R/.jax_cache. Re-running the same sweep resumes
  or re-reports each run.
sweep_plot: test error (1 − summary.json's final_top1, in %) against the switch epoch: mean over seeds with
  min / max bars. Writes the PNG and a JSON of the numbers next to it.

This module reads workdirs; it never imports the training loop.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Iterable, Iterator, Optional, Sequence

import dataclasses

import jax
import numpy as np
from etils import epath

from refine_jax import checkpoint
from refine_jax import cli
from refine_jax import plan as plan_lib
from refine_jax import prepare
from refine_jax import spec as spec_lib
from refine_jax import steps
from refine_jax import workdir as workdir_lib
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline
from refine_jax.errors import BadInput

SPECTRUM_PANEL_IN, SPECTRUM_DPI = (5.0, 4.0), 100  # per panel: 2 rows x (runs + 1) columns
MATRICES = ('scatter', 'covariance')  # the first is the default
MATRIX_DEFINITIONS = {
    'scatter': 'S = sum over examples of (x - mean)(x - mean)^T (= (n - 1) * np.cov(x, rowvar=False))',
    'covariance': 'C = np.cov(x, rowvar=False) = S / (n - 1) (ddof=1)',
}
WHY_SCATTER = (
    'The paper calls the matrix a covariance but its axes (class 0: x10^3, all classes: x10^5, for 50,000 CIFAR-100 '
    'training examples) are two orders of magnitude apart, which the all-class matrix has over a class of 500 '
    'examples only when it grows with the example count (50,000 / 500 = 100): the scatter, not the covariance, '
    'whose two panels would be of a size. So the scatter is the default; --matrix=covariance divides by n - 1.')
DEFAULT_MIN_PER_CLASS = 500  # CIFAR-100's (and Tiny-ImageNet's) training split: the paper's Figure 3 data
RANK_RTOL = 1e-9  # a singular value counts as non-zero above this times the largest
SWEEP_FIG_IN, SWEEP_DPI = (8.0, 5.0), 100
SWEEP_DIR = re.compile(r'switch(?P<switch>[0-9.]+)_seed(?P<seed>-?\d+)$')


def _pixels(size_in, dpi) -> tuple[int, int]:
  return int(round(size_in[0] * dpi)), int(round(size_in[1] * dpi))


# --------------------------------------------------------------------------- checkpoints and features


def read_config(workdir: str) -> dict:
  config = workdir_lib.read_config(workdir)
  if config is None:
    raise FileNotFoundError(f'no {workdir_lib.CONFIG} under {workdir}')
  return config


def _checkpoints(workdir: str) -> checkpoint.Checkpoints:
  if not epath.Path(workdir_lib.path(workdir, workdir_lib.CHECKPOINTS)).is_dir():
    raise FileNotFoundError(f'no checkpoints directory under {workdir}')
  return workdir_lib.open_checkpoints(workdir)


def checkpoint_metas(workdir: str) -> list[dict]:
  """The 'meta' record of every readable checkpoint of the workdir, by step."""
  out = []
  with _checkpoints(workdir) as ck:
    for step in ck.steps():
      try:
        meta = ck.restore_meta(step)
      except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is skipped, as training does
        print(f'warning: checkpoint {step} of {workdir} is unreadable ({type(e).__name__}); skipped',
              file=sys.stderr)
        continue
      out.append(dict(meta, step=int(meta.get('step', step))))
  return out


def pick_checkpoints(metas: Sequence[dict]) -> dict[str, dict]:
  """{'augmented': last checkpoint whose meta says phase 'augmented', 'final': the last checkpoint}."""
  if not metas:
    raise FileNotFoundError('no readable checkpoint')
  aug = [m for m in metas if m.get('phase') == 'augmented']
  if not aug:
    raise FileNotFoundError(
        'no checkpoint of the augmented phase is left (steps: ' + ', '.join(str(m['step']) for m in metas)
        + '); it was probably rotated out by keep_checkpoints')
  return {'augmented': aug[-1], 'final': metas[-1]}


def restore_variables(workdir: str, step: int) -> dict:
  """{'params': ..., 'batch_stats': ...} of the checkpoint at `step`, restored as raw pytrees."""
  with _checkpoints(workdir) as ck:
    state, _ = ck.restore_raw(step)
  variables = {'params': state['params']}
  if state.get('batch_stats'):
    variables['batch_stats'] = state['batch_stats']
  return variables


def load_examples(config: dict, examples: Optional[int] = None):
  """(train Split, eval op, count): the run's training split under the eval preprocessing (its plan's); count
  is the whole split, or its first `examples`."""
  spec = spec_lib.from_dict(config)
  split = prepare.split(spec, train=True)
  plan = plan_lib.resolve(spec, split.num_examples_global, ops_lib.build)
  n = split.num_examples if examples is None else min(int(examples), split.num_examples)
  return split, plan.eval_ops(), n


def feature_batches(workdir: str, step: int, examples: Optional[int] = None, *, config: Optional[dict] = None,
                    batch_size: Optional[int] = None, data=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """(features [b, D] float32, labels [b]) per eval batch of the training split (or its first `examples`), in
  order, at checkpoint `step`, padding dropped. `data` may pass a (split, op, count) from `load_examples`."""
  config = config or read_config(workdir)
  split, op, n = data or load_examples(config, examples)
  spec = spec_lib.from_dict(config)
  model = steps.make_model(dataclasses.replace(spec.model, dtype='float32'), split.num_classes)
  variables = restore_variables(workdir, step)

  @jax.jit
  def feats_of(variables, images):
    x = steps.normalize(images, split.mean, split.std)
    _, inter = model.apply(variables, x, train=False, mutable=['intermediates'],
                           rngs={'dropout': jax.random.PRNGKey(0), 'shake': jax.random.PRNGKey(0)})
    return inter['intermediates']['features'][0]

  bs = int(batch_size or spec.eval.batch_size)
  for b in pipeline.eval_batches(split, op, batch=bs, count=n):
    keep = b['mask'] > 0
    yield np.asarray(feats_of(variables, b['image']))[keep].astype(np.float32), b['label'][keep].astype(np.int64)


def extract_features(workdir: str, step: int, examples: Optional[int] = None, **kwargs) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
  """(features [n, D] float32, labels [n]) of `feature_batches`, concatenated."""
  f, l = zip(*feature_batches(workdir, step, examples, **kwargs))
  return np.concatenate(f), np.concatenate(l)


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
  return np.bincount(np.asarray(labels, np.int64), minlength=num_classes).tolist()


def check_counts(counts: Sequence[int], min_per_class: int, where: str) -> None:
  """A BadInput naming --min_per_class, the first class with fewer examples, its count and the minimum."""
  few = [(c, n) for c, n in enumerate(counts) if n < min_per_class]
  if few:
    c, n = few[0]
    raise BadInput(
        f'--min_per_class={min_per_class}: class {c} has {n} examples in {where} ({len(few)} of {len(counts)} '
        f'classes have fewer than {min_per_class}); the {MATRICES[0]} of n examples has rank at most n − 1, so '
        f'its spectrum would stop short. Use a larger train_split, or lower --min_per_class knowingly')


def _sums(batches: Iterable[tuple[np.ndarray, np.ndarray]], class_index: int, num_classes: int) -> dict:
  """{'all': sums, 'class': sums, 'counts': examples per class}: sums are n, Σy, Σyyᵀ of y = x − shift
  (float64; shift = the group's first feature vector, so Σyyᵀ − ΣyΣyᵀ/n keeps its precision)."""
  acc: dict = {'counts': np.zeros(num_classes, np.int64)}
  for f, labels in batches:
    f = f.astype(np.float64)
    acc['counts'] += np.bincount(labels, minlength=num_classes)
    for key, x in (('all', f), ('class', f[labels == class_index])):
      if not len(x):
        continue
      a = acc.setdefault(key, {'n': 0, 'shift': x[0].copy(), 's': 0.0, 'ss': 0.0})
      y = x - a['shift']
      a['n'] += len(y)
      a['s'] = a['s'] + y.sum(0)
      a['ss'] = a['ss'] + y.T @ y
  return acc


def spectrum_of(sums: dict, matrix: str) -> list[float]:
  """Singular values (descending) of the scatter Σ(x − μ)(x − μ)ᵀ, or of the covariance: scatter / (n − 1)."""
  n, s = sums['n'], sums['s']
  scatter = sums['ss'] - np.outer(s, s) / n
  m = scatter if matrix == 'scatter' else scatter / (n - 1)
  return np.linalg.svd(m, compute_uv=False).tolist()


def rank(values: Sequence[float]) -> int:
  """Singular values above RANK_RTOL times the largest."""
  v = np.asarray(values)
  return int((v > RANK_RTOL * v.max()).sum()) if len(v) and v.max() > 0 else 0


def _prepare_run(workdir: str, label: str, examples: Optional[int], min_per_class: int, class_index: int) -> dict:
  """What one workdir's spectra need, every refusal checked before any feature is computed."""
  config = read_config(workdir)
  picks = pick_checkpoints(checkpoint_metas(workdir))
  data = load_examples(config, examples)
  split, _, n = data
  if not 0 <= class_index < split.num_classes:
    raise BadInput(f'--class_index={class_index}: {workdir} has classes 0 to {split.num_classes - 1}')
  where = f'{workdir} ({config["train_split"]}' + ('' if n == split.num_examples else f', first {n}') + ')'
  counts = None
  if split.labels is not None:  # in memory: refuse from the labels, before running the model
    counts = class_counts(split.labels[:n], split.num_classes)
    check_counts(counts, min_per_class, where)
  return {'workdir': workdir, 'label': label, 'config': config, 'picks': picks, 'data': data, 'where': where,
          'counts': counts}


def _run_spectra(run: dict, matrix: str, min_per_class: int, class_index: int) -> dict:
  split, _, n = run['data']
  out = {'workdir': os.path.abspath(run['workdir']), 'label': run['label'], 'split': run['config']['train_split'],
         'examples': n, 'num_classes': split.num_classes, 'pp_eval': run['config'].get('pp_eval', ''),
         'checkpoints': {}}
  for name, meta in run['picks'].items():
    if name == 'final' and meta['step'] == run['picks']['augmented']['step']:
      continue  # no refinement checkpoint: one curve
    sums = _sums(feature_batches(run['workdir'], meta['step'], config=run['config'], data=run['data']),
                 class_index, split.num_classes)
    counts = sums['counts'].tolist()
    check_counts(counts, min_per_class, run['where'])  # a streamed split: counted as its features came
    ck = {'step': int(meta['step']), 'phase': meta.get('phase'), 'epoch': meta.get('epoch'),
          'class': spectrum_of(sums['class'], matrix), 'all_class': spectrum_of(sums['all'], matrix)}
    ck.update(rank_class=rank(ck['class']), rank_all_class=rank(ck['all_class']))
    out['checkpoints'][name] = ck
    out.update(class_counts=counts, feature_dim=len(sums['all']['s']))
  return out


def spectrum(workdirs: Sequence[str], out_png: str, *, labels: Optional[Sequence[str]] = None,
             matrix: str = 'scatter', min_per_class: int = DEFAULT_MIN_PER_CLASS, class_index: int = 0,
             examples: Optional[int] = None, yscale: str = 'linear') -> dict:
  """Figure 3 over several runs: writes the PNG and the JSON next to it; returns the JSON content.

  Every workdir is read and every refusal (too few examples per class, a class index out of range, a missing
  checkpoint of the augmented phase) raised before any feature is computed; nothing is written then.
  """
  if min_per_class < 2:
    raise BadInput(f'--min_per_class={min_per_class}: at least 2 (a class of one example has no spread)')
  if matrix not in MATRICES:
    raise BadInput(f'--matrix={matrix!r}: allowed values {", ".join(MATRICES)}')
  if yscale not in ('linear', 'log'):
    raise BadInput(f'--yscale={yscale!r}: allowed values linear, log')
  labels = list(labels or [os.path.basename(os.path.normpath(w)) for w in workdirs])
  if len(labels) != len(workdirs):
    raise BadInput(f'--label: {len(labels)} labels for {len(workdirs)} --workdir; give one per workdir, in order')
  runs = [_prepare_run(w, l, examples, min_per_class, class_index) for w, l in zip(workdirs, labels)]
  result = {'matrix': matrix, 'matrix_definition': MATRIX_DEFINITIONS[matrix], 'why_scatter_default': WHY_SCATTER,
            'features': 'penultimate features (`intermediates/features`), eval-mode model in float32, training '
                        'split under the eval preprocessing', 'class_index': class_index,
            'min_per_class': min_per_class, 'rank_rtol': RANK_RTOL,
            'runs': [_run_spectra(r, matrix, min_per_class, class_index) for r in runs]}
  result['drawn'] = plot_spectra(result, out_png, yscale)
  result['png'] = os.path.abspath(out_png)
  result['png_size'] = list(_spectrum_pixels(len(runs)))
  workdir_lib.write_json(os.path.splitext(out_png)[0] + '.json', result)
  return result


def _spectrum_pixels(num_runs: int) -> tuple[int, int]:
  return _pixels(_spectrum_fig_in(num_runs), SPECTRUM_DPI)


def _spectrum_fig_in(num_runs: int) -> tuple[float, float]:
  return SPECTRUM_PANEL_IN[0] * (num_runs + 1), SPECTRUM_PANEL_IN[1] * 2


def spectrum_curves(result: dict) -> list[dict]:
  """One curve per run and checkpoint: label, run index, which matrix ('class' / 'all_class') values."""
  out = []
  for i, run in enumerate(result['runs']):
    refined = 'final' in run['checkpoints']
    for name, ck in run['checkpoints'].items():
      if name == 'final':
        label = f'{run["label"]} + refinement (step {ck["step"]})'
      else:
        label = f'{run["label"]}' + (' (end of augmented phase' if refined else ' (') + f', step {ck["step"]})'
      out.append({'run': i, 'label': label, 'color': f'C{len(out) % 10}', 'checkpoint': ck})
  return out


def plot_spectra(result: dict, out_png: str, yscale: str = 'linear') -> list[dict]:
  """Rows: class `class_index`, all classes. Columns: every run overlaid, then one per run (the paper's
  panels: each run's augmented-phase end and its refinement). Linear axes scaled by a power of ten as the
  paper's (×10^k in the label). Returns what each panel drew, read back from its lines."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  runs, curves, c = result['runs'], spectrum_curves(result), result['class_index']
  fig, axes = plt.subplots(2, len(runs) + 1, figsize=_spectrum_fig_in(len(runs)), dpi=SPECTRUM_DPI, squeeze=False)
  matrix = result['matrix']
  drawn = []
  for row, (key, what) in enumerate((('class', f'class {c} (intra-class)'), ('all_class', 'all classes'))):
    for col in range(len(runs) + 1):
      ax = axes[row, col]
      mine = curves if col == 0 else [k for k in curves if k['run'] == col - 1]
      top = max(max(k['checkpoint'][key]) for k in mine)
      k10 = int(np.floor(np.log10(top))) if yscale == 'linear' and top > 0 else 0
      for k in mine:
        v = np.asarray(k['checkpoint'][key]) / 10.0 ** k10
        ax.plot(np.arange(1, len(v) + 1), v, color=k['color'], linewidth=1.5, label=k['label'])
      ax.set_yscale(yscale)
      unit = f' (×10^{k10})' if k10 else ''
      ax.set_ylabel(f'singular value{unit} of the {matrix}, {what}', fontsize=8)
      ax.set_xlabel('singular value index (ordered largest to smallest)', fontsize=8)
      title = 'all runs' if col == 0 else runs[col - 1]['label']
      ax.set_title(f'{title}: {what}', fontsize=9)
      ax.grid(True, alpha=0.3)
      ax.legend(fontsize=7)
      drawn.append({'row': key, 'column': title, 'y_scale': 10.0 ** k10, 'ylabel': ax.get_ylabel(),
                    'lines': [{'label': ln.get_label(), 'x': ln.get_xdata().tolist(), 'y': ln.get_ydata().tolist()}
                              for ln in ax.get_lines()]})
  fig.tight_layout()
  fig.savefig(out_png, dpi=SPECTRUM_DPI)
  plt.close(fig)
  return drawn


# --------------------------------------------------------------------------- switch-epoch sweep

# Fields the sweep sets itself; a passed-through override of them would silently change the ablation.
_SWEEP_OWNED = ('seed', 'phase_order', 'phases.augmented.epochs', 'phases.augmented.steps',
                'phases.refine.epochs', 'phases.refine.steps', 'phases.refine.lr.schedule',
                'phases.refine.lr.base', 'fork_points_epochs', 'fork_points_steps')


def _num(x: float) -> str:
  return f'{round(float(x), 6):g}'


def _check_overrides(overrides: Sequence[str]) -> None:
  for o in overrides:
    field = o.split('=', 1)[0][len('--config.'):] if o.startswith('--config.') else None
    if field is None or '=' not in o:
      raise BadInput(f'extra argument {o!r}: only --config.FIELD=VALUE overrides are passed to the runs')
    if field in _SWEEP_OWNED:
      raise BadInput(f'extra argument {o!r}: the sweep sets {field} itself')


def sweep_runs(config: str, workdir_root: str, total_epochs: float, switch_epochs: Sequence[float],
               seeds: Sequence[int], overrides: Sequence[str] = (), python: str = 'python') -> list[dict]:
  """The commands of the sweep, in order: one dict per run (kind 'trunk' or 'switch', switch epoch, refine
  epochs, seed, workdir, argv).

  Per seed the Mixup trunk is trained once, in one process (R/trunk/seed{s}): the augmented phase alone up to
  the last switch epoch, evaluating, saving and keeping a checkpoint at every other switch epoch
  (`fork_points_epochs`). Each switch a is forked from it at a (`refine_jax.fork`), refining for T − a epochs
  with lr 'continue': the run's step schedule over global epochs, as the paper's single 400-epoch run with ÷10
  at 150 and 275. The switch a = T (no refinement) is a fork at the trunk's end that trains nothing: it takes
  the trunk's checkpoint and its eval rows without those at the fork points, so every switch's workdir equals
  its run from scratch. Cost per seed: max(a) + Σ(T − a) epochs instead of N·T, in N + 1 processes.
  """
  _check_overrides(overrides)
  T = float(total_epochs)
  for a in switch_epochs:
    if not 0 < float(a) <= T:
      raise BadInput(f'switch epoch {_num(a)} is outside (0, {_num(T)}]')
  points = sorted({float(a) for a in switch_epochs})
  runs = []
  for s in seeds:
    trunk = os.path.join(workdir_root, 'trunk', f'seed{int(s)}')
    forks = '(' + ''.join(f'{_num(a)},' for a in points[:-1]) + ')'
    runs.append({'kind': 'trunk', 'switch_epoch': points[-1], 'refine_epochs': 0.0, 'seed': int(s),
                 'workdir': trunk,
                 'argv': [python, '-m', 'refine_jax.main', f'--config={config}', f'--workdir={trunk}',
                          f'--config.seed={int(s)}', f'--config.phases.augmented.epochs={_num(points[-1])}',
                          '--config.phase_order=("augmented",)', f'--config.fork_points_epochs={forks}',
                          *overrides]})
    for a in points:
      refine = round(T - a, 6)
      wd = os.path.join(workdir_root, f'switch{_num(a)}_seed{int(s)}')
      after = (['--config.phase_order=("augmented",)'] if a == T else
               [f'--config.phases.refine.epochs={_num(refine)}', '--config.phases.refine.lr.schedule=continue'])
      argv = [python, '-m', 'refine_jax.fork', f'--from={trunk}', f'--at_epoch={_num(a)}',
              f'--config={config}', f'--workdir={wd}', f'--config.seed={int(s)}',
              f'--config.phases.augmented.epochs={_num(a)}', *after, *overrides]
      runs.append({'kind': 'switch', 'switch_epoch': a, 'refine_epochs': refine if a < T else 0.0, 'seed': int(s),
                   'workdir': wd, 'argv': argv})
  return runs


def sweep_cache_env(workdir_root: str, environ) -> dict:
  """The runs of a sweep share a persistent XLA compilation cache under R/.jax_cache (unless the caller set
  one): the forks of a trunk compile the same eval and refine steps. A cached executable is the one a fresh
  compile makes, so no number changes."""
  if environ.get('JAX_COMPILATION_CACHE_DIR'):
    return {}
  return {'JAX_COMPILATION_CACHE_DIR': os.path.join(os.path.abspath(workdir_root), '.jax_cache'),
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0', 'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1'}


def sweep(args, overrides: Sequence[str]) -> int:
  switches = [float(v) for v in args.switch_epochs.split(',') if v.strip()]
  seeds = [int(v) for v in args.seeds.split(',') if v.strip()]
  runs = sweep_runs(args.config, args.workdir_root, args.total_epochs, switches, seeds, overrides,
                    python='python' if args.dry_run else sys.executable)
  if args.dry_run:
    for r in runs:
      print(shlex.join(r['argv']))
    return 0
  failed = []
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p))
  env.update(sweep_cache_env(args.workdir_root, os.environ))
  for i, r in enumerate(runs, 1):
    print(f'[{i}/{len(runs)}] {shlex.join(r["argv"])}', flush=True)
    rc = subprocess.run(r['argv'], env=env).returncode
    if rc == 3:  # preempted: stop here; re-running the sweep resumes this run and skips finished ones quickly
      print(f'preempted during {r["workdir"]}; re-run the same sweep command to resume', file=sys.stderr)
      return 3
    if rc != 0:
      failed.append((r['workdir'], rc))
      if r['kind'] == 'trunk':  # the switches of this trunk would fork from nothing
        print(f'error: trunk run {r["workdir"]} exited with {rc}; stopping the sweep', file=sys.stderr)
        return 1
  for wd, rc in failed:
    print(f'error: run {wd} exited with {rc}', file=sys.stderr)
  return 1 if failed else 0


def collect_sweep(workdir_root: str) -> list[tuple[float, int, float]]:
  """(switch epoch, seed, final_top1) of every finished R/switch{a}_seed{s} (summary.json present)."""
  out = []
  for name in sorted(os.listdir(workdir_root)):
    m = SWEEP_DIR.match(name)
    path = os.path.join(workdir_root, name, 'summary.json')
    if not m or not os.path.exists(path):
      continue
    with open(path) as f:
      top1 = json.load(f).get('final_top1')
    if top1 is not None:
      out.append((float(m.group('switch')), int(m.group('seed')), float(top1)))
  return out


def sweep_stats(points: Iterable[tuple[float, float]]) -> list[dict]:
  """Test error in % (100·(1 − top1)) per switch epoch: n, min, mean, max over seeds, by switch epoch."""
  by: dict[float, list[float]] = {}
  for switch, top1 in points:
    by.setdefault(float(switch), []).append(100.0 * (1.0 - float(top1)))
  return [{'switch_epoch': s, 'n': len(v), 'min_error': min(v), 'mean_error': float(np.mean(v)),
           'max_error': max(v)} for s, v in sorted(by.items())]


def _drawn(container) -> dict:
  """What the errorbar artists hold (read back from the figure): the line's points and each bar's ends."""
  line, (bars,) = container.lines[0], container.lines[2]
  segs = [np.asarray(s) for s in bars.get_segments()]
  return {'x': [float(v) for v in line.get_xdata()], 'mean': [float(v) for v in line.get_ydata()],
          'bar_low': [float(min(s[:, 1])) for s in segs], 'bar_high': [float(max(s[:, 1])) for s in segs],
          'bar_x': [float(s[0, 0]) for s in segs]}


def sweep_plot(workdir_root: str, out_png: str) -> dict:
  pts = collect_sweep(workdir_root)
  if not pts:
    raise FileNotFoundError(f'no finished switch*_seed* run (with summary.json) under {workdir_root}')
  stats = sweep_stats((a, t) for a, _, t in pts)
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=SWEEP_FIG_IN, dpi=SWEEP_DPI)
  x = [s['switch_epoch'] for s in stats]
  y = [s['mean_error'] for s in stats]
  yerr = [[s['mean_error'] - s['min_error'] for s in stats], [s['max_error'] - s['mean_error'] for s in stats]]
  drawn = ax.errorbar(x, y, yerr=yerr, fmt='-o', capsize=4, label='mean over seeds (bars: min / max)')
  ax.set_xlabel('switch epoch (end of the augmented phase)')
  ax.set_ylabel('test error (%)')
  ax.set_title(f'switch-epoch ablation: {workdir_root}', fontsize=9)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_png, dpi=SWEEP_DPI)
  plt.close(fig)
  result = {'workdir_root': os.path.abspath(workdir_root), 'metric': 'test error % = 100 * (1 - final_top1)',
            'points': stats, 'drawn': _drawn(drawn),
            'runs': [{'switch_epoch': a, 'seed': s, 'final_top1': t} for a, s, t in pts],
            'png': os.path.abspath(out_png), 'png_size': list(_pixels(SWEEP_FIG_IN, SWEEP_DPI))}
  workdir_lib.write_json(os.path.splitext(out_png)[0] + '.json', result)
  return result


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(prog='python -m refine_jax.analyze', allow_abbrev=False,
                               description=__doc__.split('\n')[0])
  sub = ap.add_subparsers(dest='command', required=True)
  p = sub.add_parser('spectrum', allow_abbrev=False, help='feature spectra of several runs (Figure 3)')
  p.add_argument('--workdir', action='append', required=True,
                 help='a run workdir; repeat the flag for several runs (overlaid, and one panel column each)')
  p.add_argument('--label', action='append', default=None,
                 help='legend name of each --workdir, in order (repeat; default: the workdir basenames)')
  p.add_argument('--matrix', choices=MATRICES, default=MATRICES[0],
                 help='scatter (default, see the module docstring) or covariance = scatter / (n - 1)')
  p.add_argument('--min_per_class', type=int, default=DEFAULT_MIN_PER_CLASS,
                 help=f'refuse a split with fewer examples in any class (default {DEFAULT_MIN_PER_CLASS})')
  p.add_argument('--class_index', type=int, default=0, help='the intra-class panel\'s class (default 0)')
  p.add_argument('--examples', type=int, default=None, help='only the first N training examples (default: all)')
  p.add_argument('--yscale', choices=('linear', 'log'), default='linear', help='linear (the paper\'s) or log')
  p.add_argument('--out', default=None, help='PNG path (default FIRST_WORKDIR/spectrum.png); JSON next to it')
  p = sub.add_parser('sweep', allow_abbrev=False, help='switch-epoch ablation runs (Figure 4)')
  p.add_argument('--config', required=True)
  p.add_argument('--workdir_root', required=True)
  p.add_argument('--total_epochs', type=float, required=True)
  p.add_argument('--switch_epochs', required=True, help='comma-separated switch epochs')
  p.add_argument('--seeds', default='0', help='comma-separated seeds')
  p.add_argument('--dry_run', action='store_true', help='print the commands instead of running them')
  p = sub.add_parser('sweep_plot', allow_abbrev=False, help='test error against switch epoch')
  p.add_argument('--workdir_root', required=True)
  p.add_argument('--out', default=None, help='PNG path (default WORKDIR_ROOT/sweep.png); JSON next to it')
  return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command: its exit code (`cli.guarded`: bad input 2, a stop by SIGTERM 3)."""
  return cli.guarded(_main, sys.argv[1:] if argv is None else argv)


def _main(argv: Sequence[str]) -> int:
  ap = _parser()
  args, extra = ap.parse_known_args(argv)
  if extra and args.command != 'sweep':
    ap.error(f'unrecognized arguments: {" ".join(extra)}')
  if args.command == 'spectrum':
    from absl import logging
    logging.set_verbosity(logging.ERROR)  # orbax's read-only notices
    out = args.out or os.path.join(args.workdir[0], 'spectrum.png')
    res = spectrum(args.workdir, out, labels=args.label, matrix=args.matrix, min_per_class=args.min_per_class,
                   class_index=args.class_index, examples=args.examples, yscale=args.yscale)
    w, h = res['png_size']
    print(f'{out} ({w}x{h} px), {os.path.splitext(out)[0]}.json: {res["matrix"]} of the penultimate features')
    for r in res['runs']:
      print(f'  {r["label"]}: {r["examples"]} examples (class {res["class_index"]}: '
            f'{r["class_counts"][res["class_index"]]}), feature_dim {r["feature_dim"]}; '
            + ', '.join(f'{k} step {v["step"]}: rank class {v["rank_class"]}, all {v["rank_all_class"]}'
                        for k, v in r['checkpoints'].items()))
    return 0
  if args.command == 'sweep':
    return sweep(args, extra)
  out = args.out or os.path.join(args.workdir_root, 'sweep.png')
  res = sweep_plot(args.workdir_root, out)
  print(f'{out} ({res["png_size"][0]}x{res["png_size"][1]} px)')
  print('switch_epoch  n  min_error  mean_error  max_error (%)')
  for p in res['points']:
    print(f'{p["switch_epoch"]:>12g} {p["n"]:>2d} {p["min_error"]:>10.2f} {p["mean_error"]:>11.2f} '
          f'{p["max_error"]:>10.2f}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
