"""report.md tables and plots, feature spectra and the switch-epoch sweep, on two real short CIFAR-10 runs.

Every number is checked against an independent computation from the workdir's files (metrics.jsonl, the
checkpoint's features through numpy), never against the code under test.
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, TFDS_DIR, env_for, needs_cifar, read_rows, run_main

CIFAR_SHORT = [
    f'--config.data_dir={TFDS_DIR}', '--config.model=resnet_tiny', '--config.train_split=train[:512]',
    '--config.eval_split=test[:256]', '--config.batch_size=32', '--config.eval_batch_size=64',
    '--config.diag_examples=128', '--config.phases.augmented.steps=32', '--config.phases.refine.steps=16',
    '--config.eval_every_steps=8', '--config.checkpoint_every_steps=16',
]
CONFIG = 'cifar10_preact18_mixup.py'
PNG_LINE = re.compile(r'`([^`]+\.png)`: (\d+)x(\d+) px')


def _cli(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
  p = subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=env_for(), capture_output=True,
                     text=True, timeout=timeout)
  return p


def _ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
  assert p.returncode == 0, f'exit {p.returncode}\nSTDOUT:\n{p.stdout[-3000:]}\nSTDERR:\n{p.stderr[-5000:]}'
  return p


@pytest.fixture(scope='module')
def seed_runs(tmp_path_factory):
  """Two seeds of the same short run (the two processes run side by side)."""
  if not os.path.isdir(os.path.join(TFDS_DIR, 'cifar10')):
    pytest.skip(f'no TFDS cifar10 under {TFDS_DIR}')
  root = tmp_path_factory.mktemp('report_runs')
  wds = [str(root / f'seed{s}') for s in (0, 1)]
  with concurrent.futures.ThreadPoolExecutor(2) as ex:
    futs = [ex.submit(run_main, CONFIG, wd, *CIFAR_SHORT, f'--config.seed={s}') for s, wd in zip((0, 1), wds)]
    for f in futs:
      f.result()
  return wds


# --------------------------------------------------------------------------- report


def _tables(md: str) -> dict[str, dict[str, list[str]]]:
  """{section heading: {group: cells after 'group'}} for each markdown table under a '## ' heading."""
  out, section = {}, None
  for line in md.splitlines():
    if line.startswith('## '):
      section = line[3:].strip()
    elif line.startswith('| G') and section:
      cells = [c.strip() for c in line.strip().strip('|').split('|')]
      out.setdefault(section, {})[cells[0]] = cells[1:]
  return out


def _cell(text: str) -> tuple[float, float | None]:
  if text == '–':
    return math.nan, None
  parts = [p.strip() for p in text.split('±')]
  return float(parts[0]), (float(parts[1]) if len(parts) > 1 else None)


def _expected_phase(rows, phase):
  pr = [r for r in rows if r['phase'] == phase]
  top1 = [r['test_top1'] * 100 for r in pr]
  return {'best': max(top1), 'last': top1[-1], 'median': float(np.median(top1[-10:])),
          'clean': pr[-1]['train_clean_loss'], 'aug': pr[-1]['train_aug_loss']}


def _assert_cell(text: str, values: list[float], digits: int):
  mean, std = _cell(text)
  tol = 0.5 * 10 ** -digits + 1e-9
  assert mean == pytest.approx(float(np.mean(values)), abs=tol), (text, values)
  if len(values) == 1:
    assert std is None, text
  else:
    assert std == pytest.approx(float(np.std(values, ddof=1)), abs=tol), (text, values)


@needs_cifar
def test_report_tables_and_plots(seed_runs, tmp_path):
  # A third, hand-made run with another experiment (label smoothing) and no refine phase: its own group, n=1.
  other = tmp_path / 'other'
  other.mkdir()
  cfg = json.load(open(os.path.join(seed_runs[0], 'config.json')))
  cfg.update(label_smoothing=0.1, seed=5, phase_order=['augmented'])
  (other / 'config.json').write_text(json.dumps(cfg))
  fake = [{'step': 8 * i, 'epoch': i / 2, 'phase': 'augmented', 'lr': 0.1, 'test_top1': t, 'test_top5': 0.5,
           'test_loss': 2.0 - t, 'train_clean_loss': 1.5 + i, 'train_aug_loss': 1.7 + i, 'test_count': 256,
           'mix_gamma': 1.0, 'aug_prob': 1.0} for i, t in enumerate([0.10, 0.30, 0.20], 1)]
  (other / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in fake))

  out = tmp_path / 'out'
  p = _ok(_cli('refine_jax.report', *seed_runs, str(other), f'--out={out}'))
  assert p.stdout.strip().endswith('report.md')
  md = (out / 'report.md').read_text()
  tables = _tables(md)
  acc = next(v for k, v in tables.items() if k.startswith('Test top-1 accuracy'))
  ce = next(v for k, v in tables.items() if k.startswith('Training cross-entropy'))
  assert 'accuracy in %' in md
  assert set(acc) == {'G1', 'G2'} and set(ce) == {'G1', 'G2'}

  # G1: the two seeds, mean ± std (ddof=1) of numbers computed here from metrics.jsonl.
  exp = [{ph: _expected_phase(read_rows(w), ph) for ph in ('augmented', 'refine')} for w in seed_runs]
  assert acc['G1'][0] == '2'
  for j, (ph, key) in enumerate([(ph, k) for ph in ('augmented', 'refine') for k in ('best', 'last', 'median')]):
    _assert_cell(acc['G1'][1 + j], [e[ph][key] for e in exp], 2)
  assert ce['G1'][0] == '2'
  for j, (ph, key) in enumerate([(ph, k) for ph in ('augmented', 'refine') for k in ('clean', 'aug')]):
    _assert_cell(ce['G1'][1 + j], [e[ph][key] for e in exp], 4)
  # The std of two values is |a − b| / √2: check one cell that way too.
  a, b = exp[0]['refine']['last'], exp[1]['refine']['last']
  assert _cell(acc['G1'][5])[1] == pytest.approx(abs(a - b) / math.sqrt(2), abs=0.006)

  # G2: the fake run, hand-computable: best 30, last 20, median of [10, 30, 20] = 20; no refine phase.
  assert acc['G2'] == ['1', '30.00', '20.00', '20.00', '–', '–', '–']
  assert ce['G2'] == ['1', '4.5000', '4.7000', '–', '–']
  assert 'label_smoothing=0.1' in md

  # Two PNGs per run, each the stated pixel size.
  pngs = PNG_LINE.findall(md)
  assert len(pngs) == 6
  assert {n.split('_', 1)[0] for n, _, _ in pngs} == {'loss', 'accuracy'}
  for name, w, h in pngs:
    with Image.open(out / name) as im:
      im.load()
      assert im.size == (int(w), int(h)), name
      assert im.format == 'PNG'


# --------------------------------------------------------------------------- spectrum


@needs_cifar
def test_spectrum(seed_runs, tmp_path):
  from refine_jax import analyze
  wd, n_ex = seed_runs[0], 256
  png = tmp_path / 'spec.png'
  p = _ok(_cli('refine_jax.analyze', 'spectrum', f'--workdir={wd}', f'--examples={n_ex}', f'--out={png}'))
  res = json.load(open(tmp_path / 'spec.json'))
  assert res['examples'] == n_ex and res['num_classes'] == 10
  assert res['feature_dim'] == 64  # resnet_tiny: widths 16/32/64, pooled last stage
  d = res['feature_dim']
  cks = res['checkpoints']
  assert set(cks) == {'augmented', 'final'}
  assert (cks['augmented']['step'], cks['augmented']['phase']) == (32, 'augmented')  # end of the augmented phase
  assert (cks['final']['step'], cks['final']['phase']) == (48, 'refine')
  for ck in cks.values():
    spectra = [ck['all_class']] + list(ck['intra_class'].values())
    assert len(ck['intra_class']) == 10
    for sv in spectra:
      sv = np.asarray(sv)
      assert sv.shape == (d,)
      assert np.all(sv >= 0)
      assert np.all(np.diff(sv) <= 0)
    assert sum(ck['class_counts'].values()) == n_ex
  assert not np.allclose(cks['augmented']['all_class'], cks['final']['all_class'])
  w, h = res['png_size']
  assert f'{w}x{h} px' in p.stdout
  with Image.open(png) as im:
    im.load()
    assert im.size == (w, h)

  # Independently: the same features in this process; numpy's covariance eigenvalues (not an SVD).
  feats, labels = analyze.extract_features(wd, 48, n_ex)
  assert feats.shape == (n_ex, d)
  # The labels are those of the first n examples of the training split, in order.
  from refine_jax.data import sources
  import ml_collections
  cfg = json.load(open(os.path.join(wd, 'config.json')))
  split = sources.load(ml_collections.ConfigDict(cfg), cfg['train_split'], train=True)
  np.testing.assert_array_equal(labels, split.labels[:n_ex])
  assert {str(c): int((labels == c).sum()) for c in range(10)} == cks['final']['class_counts']

  x = feats.astype(np.float64)
  xc = x - x.mean(0)
  ev = np.sort(np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1)))[::-1]
  got = np.asarray(cks['final']['all_class'])
  np.testing.assert_allclose(got, np.clip(ev, 0, None), rtol=1e-3, atol=1e-5 * ev[0])
  for c in (0, 7):
    fc = x[labels == c]
    fc = fc - fc.mean(0)
    evc = np.sort(np.linalg.eigvalsh(fc.T @ fc / (len(fc) - 1)))[::-1]
    np.testing.assert_allclose(cks['final']['intra_class'][str(c)], np.clip(evc, 0, None), rtol=1e-3,
                               atol=1e-5 * evc[0])

  # The sown features are the penultimate layer: the classifier applied to them gives the model's logits.
  import jax.numpy as jnp
  from refine_jax import models, steps
  variables = analyze.restore_variables(wd, 48)
  model = models.get_model(cfg['model'], 10, dtype=jnp.float32, **dict(cfg.get('model_kwargs') or {}))
  from refine_jax.data import pipeline
  _, eval_op, _ = analyze.load_examples(cfg, 64)
  batch = next(pipeline.eval_batches(split, eval_op, batch=64, count=64))
  logits = np.asarray(model.apply(variables, steps.normalize(batch['image'], split.mean, split.std), train=False))
  fc = variables['params']['fc']
  np.testing.assert_allclose(feats[:64] @ np.asarray(fc['kernel']) + np.asarray(fc['bias']), logits,
                             rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- sweep


def test_sweep_dry_run_prints_the_runs(tmp_path):
  """Per seed: the trunk in one process up to the last switch, keeping a checkpoint at every other switch
  (fork_points_epochs), then each switch forked from it with lr 'continue' (the last, a = T, trains nothing);
  max(a) + Σ(T − a) epochs in all."""
  root = str(tmp_path / 'sw')
  p = _ok(_cli('refine_jax.analyze', 'sweep', '--config=configs/cifar10_preact18_mixup.py',
               f'--workdir_root={root}', '--total_epochs=10', '--switch_epochs=7.5,2,10', '--seeds=0,3',
               '--dry_run', '--config.data_dir=/data/tfds', timeout=60))
  lines = [shlex.split(l) for l in p.stdout.strip().splitlines()]
  assert len(lines) == 8
  seen, epochs, made = [], {0: 0.0, 3: 0.0}, set()
  for argv in lines:
    flags = dict(a.split('=', 1) for a in argv[3:])
    assert flags['--config'] == 'configs/cifar10_preact18_mixup.py'
    assert flags['--config.data_dir'] == '/data/tfds'
    a, s = float(flags['--config.phases.augmented.epochs']), int(flags['--config.seed'])
    refine = float(flags.get('--config.phases.refine.epochs', 0))
    if argv[2] == 'refine_jax.main':  # the trunk: Mixup only, to the last switch, checkpoints at the others
      start = 0.0
      assert a == 10 and flags['--config.phase_order'] == '("augmented",)'
      assert flags['--config.fork_points_epochs'] == '(2,7.5,)'
      assert flags['--workdir'] == os.path.join(root, 'trunk', f'seed{s}')
    else:
      assert argv[2] == 'refine_jax.fork' and flags['--from'] == os.path.join(root, 'trunk', f'seed{s}')
      assert flags['--from'] in made  # forks only from a run made before
      start = float(flags['--at_epoch'])
      assert start == a and flags['--workdir'] == os.path.join(root, f'switch{a:g}_seed{s}')
      if a < 10:  # refine for the rest of the T epochs at the whole run's lr
        assert refine == pytest.approx(10 - a) and '--config.phase_order' not in flags
        assert flags['--config.phases.refine.lr.schedule'] == 'continue'
      else:
        assert flags['--config.phase_order'] == '("augmented",)' and not refine
    epochs[s] += a - start + refine
    made.add(flags['--workdir'])
    seen.append((s, argv[2], a))
  per_seed = [('refine_jax.main', 10), ('refine_jax.fork', 2), ('refine_jax.fork', 7.5), ('refine_jax.fork', 10)]
  assert seen == [(s, m, a) for s in (0, 3) for m, a in per_seed]
  assert epochs == {0: 10 + 8 + 2.5, 3: 10 + 8 + 2.5}  # max(a) + Σ(T − a), not 3·T
  assert not os.path.exists(root)  # a dry run writes nothing

  # Switch epochs outside (0, T] and overrides of fields the sweep owns are usage errors.
  bad = _cli('refine_jax.analyze', 'sweep', '--config=c.py', f'--workdir_root={root}', '--total_epochs=10',
             '--switch_epochs=12', '--dry_run', timeout=60)
  assert bad.returncode == 2 and 'outside' in bad.stderr
  bad = _cli('refine_jax.analyze', 'sweep', '--config=c.py', f'--workdir_root={root}', '--total_epochs=10',
             '--switch_epochs=5', '--dry_run', '--config.phases.refine.epochs=3', timeout=60)
  assert bad.returncode == 2 and 'sets phases.refine.epochs itself' in bad.stderr


def test_sweep_stats_pure():
  from refine_jax import analyze
  got = analyze.sweep_stats([(100, 0.90), (50, 0.80), (100, 0.95), (100, 0.93), (50, 0.70)])
  assert [g['switch_epoch'] for g in got] == [50, 100]
  assert got[0] == pytest.approx({'switch_epoch': 50, 'n': 2, 'min_error': 20, 'mean_error': 25, 'max_error': 30})
  assert got[1] == pytest.approx({'switch_epoch': 100, 'n': 3, 'min_error': 5, 'mean_error': 22 / 3,
                                  'max_error': 10})


def test_sweep_plot_on_fake_workdirs(tmp_path):
  root = tmp_path / 'sw'
  finals = {(100, 0): 0.9, (100, 1): 0.92, (100, 2): 0.85, (37.5, 0): 0.6, (37.5, 1): 0.64}
  for (a, s), t in finals.items():
    d = root / f'switch{a:g}_seed{s}'
    d.mkdir(parents=True)
    (d / 'summary.json').write_text(json.dumps({'final_top1': t, 'phases': {}}))
  (root / 'switch50_seed0').mkdir()  # still running: no summary.json, ignored
  (root / 'notes').mkdir()
  png = tmp_path / 'sweep.png'
  p = _ok(_cli('refine_jax.analyze', 'sweep_plot', f'--workdir_root={root}', f'--out={png}', timeout=120))
  res = json.load(open(tmp_path / 'sweep.json'))
  exp = [(37.5, [40, 36]), (100, [10, 8, 15])]
  assert [pt['switch_epoch'] for pt in res['points']] == [37.5, 100]
  for pt, (a, errs) in zip(res['points'], exp):
    assert pt['n'] == len(errs)
    assert pt['min_error'] == pytest.approx(min(errs))
    assert pt['max_error'] == pytest.approx(max(errs))
    assert pt['mean_error'] == pytest.approx(statistics.mean(errs))
  # What the figure draws, read back from its artists, against numpy on the same summary rows.
  errs = {a: 100 * (1 - np.array([t for (b, _), t in finals.items() if b == a])) for a in (37.5, 100)}
  d = res['drawn']
  assert d['x'] == d['bar_x'] == [37.5, 100]
  np.testing.assert_allclose(d['mean'], [errs[a].mean() for a in (37.5, 100)], rtol=1e-12)
  np.testing.assert_allclose(d['bar_low'], [errs[a].min() for a in (37.5, 100)], rtol=1e-12)
  np.testing.assert_allclose(d['bar_high'], [errs[a].max() for a in (37.5, 100)], rtol=1e-12)
  w, h = res['png_size']
  assert f'{w}x{h} px' in p.stdout
  with Image.open(png) as im:
    im.load()
    assert im.size == (w, h)
