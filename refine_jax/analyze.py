"""Analyses of finished runs: feature spectra (paper's Figure 3) and the switch-epoch ablation (Figure 4).

    python -m refine_jax.analyze spectrum --workdir=W [--examples=N] [--out=PNG]
    python -m refine_jax.analyze sweep --config=C --workdir_root=R --total_epochs=T --switch_epochs=a,b,c \
        --seeds=0,1,2 [--dry_run] [--config.FIELD=VALUE ...]
    python -m refine_jax.analyze sweep_plot --workdir_root=R --out=PNG

spectrum: singular values of the covariance of the penultimate features (the `intermediates/features` every
  model sows), per class (intra-class, centred on the class mean) and over all classes, for the checkpoint at
  the end of the augmented phase and for the final checkpoint. Features are those of the first N training
  examples under the eval preprocessing, with the eval-mode model rebuilt from config.json in float32.
  Writes the PNG (log scale) and a JSON of the numbers next to it (same name, .json).
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
from typing import Iterable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from refine_jax import checkpoint
from refine_jax import metrics as metrics_lib
from refine_jax import models
from refine_jax import plan as plan_lib
from refine_jax import steps
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline, sources

SPECTRUM_FIG_IN, SPECTRUM_DPI = (12.0, 5.0), 100
SWEEP_FIG_IN, SWEEP_DPI = (8.0, 5.0), 100
SWEEP_DIR = re.compile(r'switch(?P<switch>[0-9.]+)_seed(?P<seed>-?\d+)$')


def _pixels(size_in, dpi) -> tuple[int, int]:
  return int(round(size_in[0] * dpi)), int(round(size_in[1] * dpi))


# --------------------------------------------------------------------------- checkpoints and features


def read_config(workdir: str) -> dict:
  config = metrics_lib.read_json(os.path.join(workdir, metrics_lib.CONFIG))
  if config is None:
    raise FileNotFoundError(f'no {metrics_lib.CONFIG} under {workdir}')
  return config


def _checkpoints(workdir: str) -> checkpoint.Checkpoints:
  d = os.path.join(workdir, 'checkpoints')
  if not epath.Path(d).is_dir():
    raise FileNotFoundError(f'no checkpoints directory under {workdir}')
  return checkpoint.Checkpoints(d, read_only=True)


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


def load_examples(config: dict, examples: int):
  """(train Split, eval op, count): the run's training split under the eval preprocessing (its plan's)."""
  cfg = ml_collections.ConfigDict(config)
  split = sources.load(cfg, cfg.train_split, train=True)
  plan = plan_lib.resolve(cfg, max(pipeline.steps_per_epoch(split, cfg.batch_size), 1), ops_lib.build)
  return split, plan.eval_ops(), min(int(examples), split.num_examples)


def extract_features(workdir: str, step: int, examples: int, *, config: Optional[dict] = None,
                     batch_size: Optional[int] = None, data=None) -> tuple[np.ndarray, np.ndarray]:
  """(features [n, D] float32, labels [n]) of the first `examples` training examples at checkpoint `step`.

  `data` may pass a (split, op, count) from `load_examples` to reuse across checkpoints.
  """
  config = config or read_config(workdir)
  split, op, n = data or load_examples(config, examples)
  model = models.get_model(config['model'], split.num_classes, dtype=jnp.float32,
                           **dict(config.get('model_kwargs') or {}))
  variables = restore_variables(workdir, step)

  @jax.jit
  def feats_of(variables, images):
    x = steps.normalize(images, split.mean, split.std)
    _, inter = model.apply(variables, x, train=False, mutable=['intermediates'],
                           rngs={'dropout': jax.random.PRNGKey(0), 'shake': jax.random.PRNGKey(0)})
    return inter['intermediates']['features'][0]

  bs = int(batch_size or config.get('eval_batch_size') or 256)
  feats, labels = [], []
  for b in pipeline.eval_batches(split, op, batch=bs, count=n):
    keep = b['mask'] > 0
    f = np.asarray(feats_of(variables, b['image']))
    feats.append(f[keep])
    labels.append(b['label'][keep])
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels).astype(np.int64)


def covariance_spectra(features: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
  """Singular values (descending) of the all-class covariance and of each class's covariance (ddof=1).

  Classes with fewer than 2 examples have no covariance and are left out.
  """
  f = np.asarray(features, np.float64)
  out = {'all_class': np.linalg.svd(np.cov(f, rowvar=False), compute_uv=False).tolist(), 'intra_class': {},
         'class_counts': {}}
  for c in range(num_classes):
    fc = f[labels == c]
    out['class_counts'][str(c)] = int(len(fc))
    if len(fc) >= 2:
      out['intra_class'][str(c)] = np.linalg.svd(np.cov(fc, rowvar=False), compute_uv=False).tolist()
  if out['intra_class']:
    out['intra_class_mean'] = np.mean([v for v in out['intra_class'].values()], axis=0).tolist()
  return out


def spectrum(workdir: str, examples: int, out_png: str) -> dict:
  """Computes both checkpoints' spectra, writes the PNG and the JSON next to it; returns the JSON content."""
  config = read_config(workdir)
  picks = pick_checkpoints(checkpoint_metas(workdir))
  data = load_examples(config, examples)
  split = data[0]
  result = {'workdir': os.path.abspath(workdir), 'examples': data[2], 'num_classes': split.num_classes,
            'split': config['train_split'], 'pp_eval': config.get('pp_eval', ''),
            'covariance': 'np.cov(features, rowvar=False) (ddof=1); intra_class: per class, centred on the '
                          'class mean; values: singular values, descending',
            'checkpoints': {}}
  for name, meta in picks.items():
    feats, labels = extract_features(workdir, meta['step'], examples, config=config, data=data)
    spec = covariance_spectra(feats, labels, split.num_classes)
    result['feature_dim'] = int(feats.shape[1])
    result['checkpoints'][name] = dict(spec, step=int(meta['step']), phase=meta.get('phase'),
                                       epoch=meta.get('epoch'), batch_in_epoch=meta.get('batch_in_epoch'))
  if picks['augmented']['step'] == picks['final']['step']:
    result['note'] = 'the last checkpoint is the end of the augmented phase (no refinement checkpoint)'
  w, h = plot_spectra(result, out_png)
  result['png'] = os.path.abspath(out_png)
  result['png_size'] = [w, h]
  metrics_lib.write_json_atomic(os.path.splitext(out_png)[0] + '.json', result)
  return result


def plot_spectra(result: dict, out_png: str) -> tuple[int, int]:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, (ax_c, ax_a) = plt.subplots(1, 2, figsize=SPECTRUM_FIG_IN, dpi=SPECTRUM_DPI)
  colors = {'augmented': 'C1', 'final': 'C0'}
  every = []
  for name, ck in result['checkpoints'].items():
    label = f'{name} (step {ck["step"]}, phase {ck["phase"]})'
    col = colors.get(name, 'C2')
    for i, v in enumerate(ck['intra_class'].values()):
      ax_c.plot(np.arange(1, len(v) + 1), v, color=col, alpha=0.25, linewidth=0.8)
      every += v
    if 'intra_class_mean' in ck:
      ax_c.plot(np.arange(1, len(ck['intra_class_mean']) + 1), ck['intra_class_mean'], color=col, linewidth=2,
                label=f'{label}: mean over classes (thin: each class)')
    ax_a.plot(np.arange(1, len(ck['all_class']) + 1), ck['all_class'], color=col, linewidth=2, label=label)
    every += ck['all_class']
  pos = [v for v in every if v > 0]
  for ax, title in ((ax_c, 'intra-class covariance'), (ax_a, 'all-class covariance')):
    ax.set_yscale('log')
    if pos:
      ax.set_ylim(max(min(pos), max(pos) * 1e-10) / 2, max(pos) * 2)
    ax.set_xlabel('index (descending)')
    ax.set_ylabel('singular value')
    ax.set_title(f'{title}: penultimate features, {result["examples"]} training examples', fontsize=9)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_png, dpi=SPECTRUM_DPI)
  plt.close(fig)
  return _pixels(SPECTRUM_FIG_IN, SPECTRUM_DPI)


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
      raise ValueError(f'extra argument {o!r}: only --config.FIELD=VALUE overrides are passed to the runs')
    if field in _SWEEP_OWNED:
      raise ValueError(f'extra argument {o!r}: the sweep sets {field} itself')


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
      raise ValueError(f'switch epoch {_num(a)} is outside (0, {_num(T)}]')
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
  metrics_lib.write_json_atomic(os.path.splitext(out_png)[0] + '.json', result)
  return result


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(prog='python -m refine_jax.analyze', allow_abbrev=False,
                               description=__doc__.split('\n')[0])
  sub = ap.add_subparsers(dest='command', required=True)
  p = sub.add_parser('spectrum', allow_abbrev=False, help='feature covariance spectra (Figure 3)')
  p.add_argument('--workdir', required=True)
  p.add_argument('--examples', type=int, default=5000, help='training examples to use (default 5000)')
  p.add_argument('--out', default=None, help='PNG path (default WORKDIR/spectrum.png); JSON next to it')
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
  ap = _parser()
  args, extra = ap.parse_known_args(argv)
  if extra and args.command != 'sweep':
    ap.error(f'unrecognized arguments: {" ".join(extra)}')
  try:
    if args.command == 'spectrum':
      from absl import logging
      logging.set_verbosity(logging.ERROR)  # orbax's read-only notices
      out = args.out or os.path.join(args.workdir, 'spectrum.png')
      res = spectrum(args.workdir, args.examples, out)
      w, h = res['png_size']
      print(f'{out} ({w}x{h} px), {os.path.splitext(out)[0]}.json: feature_dim {res["feature_dim"]}, '
            f'{res["examples"]} examples, steps ' + ', '.join(f'{k} {v["step"]}'
                                                              for k, v in res['checkpoints'].items()))
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
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
