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

from tests.conftest import load_split  # noqa: E402
from tests.conftest import ROOT, TFDS_DIR, env_for, needs_cifar, read_rows, read_summary, run_main

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


def _fake_run(root, base_workdir, name, summary=None, **config):
  """A hand-made workdir: the first seed's config.json with `config` changed, no refine phase, three evals."""
  d = root / name
  d.mkdir()
  cfg = json.load(open(os.path.join(base_workdir, 'config.json')))
  cfg.update(phase_order=['augmented'], **config)
  (d / 'config.json').write_text(json.dumps(cfg))
  fake = [{'step': 8 * i, 'epoch': i / 2, 'phase': 'augmented', 'lr': 0.1, 'test_top1': t, 'test_top5': 0.5,
           'test_loss': 2.0 - t, 'train_clean_loss': 1.5 + i, 'train_aug_loss': 1.7 + i, 'test_count': 256,
           'mix_gamma': 1.0, 'aug_prob': 1.0} for i, t in enumerate([0.10, 0.30, 0.20], 1)]
  (d / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in fake))
  if summary is not None:
    (d / 'summary.json').write_text(json.dumps(summary))
  return str(d)


@needs_cifar
def test_report_tables_and_plots(seed_runs, tmp_path):
  # Two hand-made runs of other experiments (label smoothing) without a refine phase, each its own group, n=1:
  # one naming the paper's CIFAR-100 Mixup row, with whole-split phase-end losses in summary.json; one extension.
  whole = {'phases': {'augmented': {'phase_end_train_aug_loss': 0.0047, 'phase_end_train_clean_loss': 0.0024,
                                    'phase_end_examples': 512, 'last_train_aug_loss': 4.7,
                                    'last_train_clean_loss': 4.5}}, 'final_top1': 0.2}
  fakes = [_fake_run(tmp_path, seed_runs[0], 'other', whole, label_smoothing=0.1, seed=5,
                     paper_row='table1/cifar100/preact18/mixup'),
           _fake_run(tmp_path, seed_runs[0], 'ext', label_smoothing=0.2, seed=6, paper_row=None)]

  out = tmp_path / 'out'
  p = _ok(_cli('refine_jax.report', *seed_runs, *fakes, f'--out={out}'))
  assert p.stdout.strip().endswith('report.md')
  md = (out / 'report.md').read_text()
  tables = _tables(md)
  acc = next(v for k, v in tables.items() if k.startswith('Test top-1 accuracy'))
  ce = next(v for k, v in tables.items() if k.startswith('Training cross-entropy ×10⁻³'))
  assert 'accuracy in %' in md
  assert set(acc) == {'G1', 'G2', 'G3'} and set(ce) == {'G1', 'G2', 'G3'}

  # G1: the two seeds, mean ± std (ddof=1) of numbers computed here from metrics.jsonl.
  exp = [{ph: _expected_phase(read_rows(w), ph) for ph in ('augmented', 'refine')} for w in seed_runs]
  assert acc['G1'][0] == '2'
  for j, (ph, key) in enumerate([(ph, k) for ph in ('augmented', 'refine') for k in ('best', 'last', 'median')]):
    _assert_cell(acc['G1'][1 + j], [e[ph][key] for e in exp], 2)
  # The std of two values is |a − b| / √2: check one cell that way too.
  a, b = exp[0]['refine']['last'], exp[1]['refine']['last']
  assert _cell(acc['G1'][5])[1] == pytest.approx(abs(a - b) / math.sqrt(2), abs=0.006)
  # The paper column: Table 1, PreActResNet-18, CIFAR-10, Mixup (the config these runs were overridden from).
  assert acc['G1'][7] == 'T1: 95.92 → 96.26'

  # Table 2 in ×10⁻³, R̂aug then R̂ per phase: these runs measured both over their whole training split (512
  # examples) at each phase's end (phase_end_diag_examples' default), which the table prefers over the eval
  # subset: summary.json's phase_end_train_*_loss, the same numbers as the phase's last metrics.jsonl row.
  assert ce['G1'][0] == '2'
  sums = [read_summary(w)['phases'] for w in seed_runs]
  for j, (ph, key) in enumerate([(ph, k) for ph in ('augmented', 'refine') for k in ('aug', 'clean')]):
    vals = [1e3 * s[ph][f'phase_end_train_{key}_loss'] for s in sums]
    last_rows = [[r for r in read_rows(w) if r['phase'] == ph][-1] for w in seed_runs]
    assert vals == [1e3 * r[f'phase_end_train_{key}_loss'] for r in last_rows]
    assert all(s[ph]['phase_end_examples'] == 512 for s in sums)
    _assert_cell(ce['G1'][1 + j], vals, 2)
  assert ce['G1'][5] == 'training split at the phase end (512 examples)'
  assert ce['G1'][6:] == ['—'] * 4  # Table 2 is CIFAR-100 only

  # G2: best 30, last 20, median of [10, 30, 20] = 20; no refine phase; the paper's C100 Mixup row, aug only.
  assert acc['G2'] == ['1', '30.00', '20.00', '20.00', '–', '–', '–', 'T1: 78.95']
  # Whole-split values are preferred over the subset's (×10⁻³: 0.0047 → 4.70); the paper's Table 2 row.
  assert ce['G2'] == ['1', '4.70', '2.40', '–', '–', 'training split at the phase end (512 examples)', '1356', '98',
                      '4.7', '2.4']
  # G3, an extension: the subset's last row (4.7, 4.5 → ×10³), no paper numbers.
  assert acc['G3'][-1] == '—'
  assert ce['G3'] == ['1', '4700.00', '4500.00', '–', '–', 'eval subset (128 examples)', '—', '—', '—', '—']
  assert 'label_smoothing=0.1' in md and 'paper row `table1/cifar100/preact18/mixup`' in md
  assert 'no paper row (extension)' in md

  # Two PNGs per run, each the stated pixel size.
  pngs = PNG_LINE.findall(md)
  assert len(pngs) == 8
  assert {n.split('_', 1)[0] for n, _, _ in pngs} == {'loss', 'accuracy'}
  for name, w, h in pngs:
    with Image.open(out / name) as im:
      im.load()
      assert im.size == (int(w), int(h)), name
      assert im.format == 'PNG'


def test_table2_prefers_the_phase_end_measurement():
  """summary.json's phase-end values, else a metrics.jsonl row's (the phase's last eval), else the subset's."""
  from refine_jax import report
  row = dict(test_top1=0.5, test_loss=1.0, train_clean_loss=0.25, train_aug_loss=0.75)
  rows = [dict(row, step=8, phase='augmented'), dict(row, step=16, phase='augmented', phase_end_train_aug_loss=0.5,
                                                     phase_end_examples=300),
          dict(row, step=24, phase='refine')]
  run = {'rows': rows, 'summary': None}
  keys = ('phase_end_train_aug_loss', 'last_train_aug_loss')
  assert report.phase_end_loss(run, 'augmented', *keys) == (0.5, 'whole:300')
  assert report.phase_end_loss(run, 'refine', *keys) == (0.75, 'subset')
  run['summary'] = {'phases': {'augmented': {'phase_end_train_aug_loss': 0.125}}}
  assert report.phase_end_loss(run, 'augmented', *keys) == (0.125, 'whole')
  assert report.phase_end_loss({'rows': rows[:1], 'summary': None}, 'refine', *keys) == (None, 'none')
  assert report.table2_source({'whole:300', 'subset', 'none'}, {}) == ('mixed: training split at the phase end '
                                                                      '(300 examples) where measured, else the '
                                                                      'eval subset')


# --------------------------------------------------------------------------- spectrum


def _split_labels(wd):
  import ml_collections
  from refine_jax.data import sources
  cfg = json.load(open(os.path.join(wd, 'config.json')))
  return cfg, load_split(ml_collections.ConfigDict(cfg), cfg['train_split'], train=True)


@needs_cifar
def test_spectrum(seed_runs, tmp_path):
  """Figure 3 over the whole (512-example) split of both runs: the scatter's spectra equal numpy's on the same
  features, class 0's has exactly min(d, n0 − 1) non-zero values, and the figure overlays both runs."""
  from refine_jax import analyze
  png = tmp_path / 'spec.png'
  p = _ok(_cli('refine_jax.analyze', 'spectrum', *(f'--workdir={w}' for w in seed_runs), '--label=Mixup A',
               '--label=Mixup B', '--min_per_class=40', f'--out={png}'))
  res = json.load(open(tmp_path / 'spec.json'))
  assert res['matrix'] == 'scatter' and res['class_index'] == 0 and len(res['runs']) == 2
  cfg, split = _split_labels(seed_runs[0])
  counts = np.bincount(split.labels, minlength=10)
  assert counts.sum() == 512 and counts.min() >= 40 and counts[0] < 64  # whole split; class 0 below d
  n0 = int(counts[0])
  for i, (wd, run) in enumerate(zip(seed_runs, res['runs'])):
    assert run['examples'] == 512 and run['class_counts'] == counts.tolist()
    assert run['feature_dim'] == 64  # resnet_tiny: widths 16/32/64, pooled last stage
    d = run['feature_dim']
    cks = run['checkpoints']
    assert (cks['augmented']['step'], cks['augmented']['phase']) == (32, 'augmented')  # end of the augmented phase
    assert (cks['final']['step'], cks['final']['phase']) == (48, 'refine')
    for step, ck in ((32, cks['augmented']), (48, cks['final']))[i:]:  # the second run: its final one only
      # Independently: the same features in this process, numpy's SVD of (n − 1)·np.cov.
      feats, labels = analyze.extract_features(wd, step)
      np.testing.assert_array_equal(labels, split.labels)
      x = feats.astype(np.float64)
      for key, xs in (('class', x[labels == 0]), ('all_class', x)):
        want = np.linalg.svd((len(xs) - 1) * np.cov(xs, rowvar=False), compute_uv=False)
        got = np.asarray(ck[key])
        assert got.shape == (d,) and np.all(np.diff(got) <= 0)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * want[0])
      nonzero = int((np.asarray(ck['class']) > 1e-9 * ck['class'][0]).sum())
      assert nonzero == ck['rank_class'] == min(d, n0 - 1), (nonzero, n0)
      assert ck['rank_all_class'] == int((want > 1e-9 * want[0]).sum())
      # The covariance option is the scatter / (n − 1): against np.cov directly.
      sums = analyze._sums([(feats, labels)], 0, 10)
      np.testing.assert_allclose(analyze.spectrum_of(sums['class'], 'covariance'),
                                 np.linalg.svd(np.cov(x[labels == 0], rowvar=False), compute_uv=False),
                                 rtol=1e-6, atol=1e-9 * want[0])
  assert not np.allclose(res['runs'][0]['checkpoints']['final']['class'],
                         res['runs'][1]['checkpoints']['final']['class'])

  # What the figure drew, read back from its lines: 2 rows x (all runs, run A, run B); the overlay panels hold
  # both runs' two checkpoints; every line's values are the JSON's spectrum over the panel's ×10^k.
  drawn = res['drawn']
  assert [(q['row'], q['column']) for q in drawn] == [(r, c) for r in ('class', 'all_class')
                                                      for c in ('all runs', 'Mixup A', 'Mixup B')]
  for q in drawn:
    labels = [ln['label'] for ln in q['lines']]
    want = ['Mixup A (end of augmented phase, step 32)', 'Mixup A + refinement (step 48)',
            'Mixup B (end of augmented phase, step 32)', 'Mixup B + refinement (step 48)']
    assert labels == (want if q['column'] == 'all runs' else [l for l in want if l.startswith(q['column'])])
    assert 'scatter' in q['ylabel'] and ('class 0' in q['ylabel']) == (q['row'] == 'class')
    for ln in q['lines']:
      run = res['runs'][0 if ln['label'].startswith('Mixup A') else 1]
      ck = run['checkpoints']['final' if 'refinement' in ln['label'] else 'augmented']
      np.testing.assert_allclose(np.asarray(ln['y']) * q['y_scale'], ck[q['row']], rtol=1e-12)
      assert ln['x'] == list(range(1, 65))
  w, h = res['png_size']
  assert f'{w}x{h} px' in p.stdout
  with Image.open(png) as im:
    im.load()
    assert im.size == (w, h)

  # The sown features are the penultimate layer: the classifier applied to them gives the model's logits.
  import jax.numpy as jnp
  from refine_jax import models, steps
  from refine_jax.data import pipeline
  wd = seed_runs[0]
  feats, _ = analyze.extract_features(wd, 48, 64)
  variables = analyze.restore_variables(wd, 48)
  model = models.get_model(cfg['model'], 10, dtype=jnp.float32, **dict(cfg.get('model_kwargs') or {}))
  _, eval_op, _ = analyze.load_examples(cfg, 64)
  batch = next(pipeline.eval_batches(split, eval_op, batch=64, count=64))
  logits = np.asarray(model.apply(variables, steps.normalize(batch['image'], split.mean, split.std), train=False))
  fc = variables['params']['fc']
  np.testing.assert_allclose(feats @ np.asarray(fc['kernel']) + np.asarray(fc['bias']), logits,
                             rtol=1e-4, atol=1e-4)


@needs_cifar
def test_spectrum_refuses_too_few_examples_per_class(seed_runs, tmp_path, capsys):
  from refine_jax import analyze
  _, split = _split_labels(seed_runs[0])
  counts = np.bincount(split.labels, minlength=10)
  out = tmp_path / 'out'
  out.mkdir()
  # The default minimum, 500 per class, against ~51 here; then one --label too many.
  assert analyze.main(['spectrum', f'--workdir={seed_runs[0]}', f'--workdir={seed_runs[1]}',
                       f'--out={out / "s.png"}']) == 2
  assert f'--min_per_class=500: class 0 has {counts[0]} examples in {seed_runs[0]}' in capsys.readouterr().err
  assert analyze.main(['spectrum', f'--workdir={seed_runs[0]}', '--min_per_class=40', '--label=a', '--label=b',
                       f'--out={out / "s.png"}']) == 2
  assert '2 labels for 1 --workdir' in capsys.readouterr().err
  assert os.listdir(out) == []


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


def _hand_run(root, name, phases, seed=0, **config):
  """A hand-made workdir with `len(phases)` evals (epoch i), no training: config.json, metrics.jsonl."""
  d = root / name
  d.mkdir()
  (d / 'config.json').write_text(json.dumps({'seed': seed, 'phase_order': sorted(set(phases)), **config}))
  rows = [{'step': 10 * i, 'epoch': float(i), 'phase': p, 'lr': 0.1, 'test_top1': 0.1 + 0.05 * i, 'test_top5': 0.9,
           'test_loss': 2.0 / i, 'train_clean_loss': 1.0 / i, 'train_aug_loss': 3.0 / i, 'test_count': 100,
           'mix_gamma': 1.0, 'aug_prob': 1.0} for i, p in enumerate(phases, 1)]
  (d / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  return str(d), rows


def test_figure1_draws_the_named_runs_side_by_side(tmp_path):
  from refine_jax import report
  trunk, trunk_rows = _hand_run(tmp_path, 'mixup', ['augmented'] * 4)
  fork, fork_rows = _hand_run(tmp_path, 'mixup_ref', ['augmented'] * 4 + ['refine'] * 2, refine_epochs=2)
  other, _ = _hand_run(tmp_path, 'standard', ['augmented'] * 4, model='resnet_tiny')  # another experiment
  # What is drawn is the rows, as they are in metrics.jsonl; refinement starts at the last augmented eval.
  s = report.figure1_series(report.load_run(fork))
  assert s['epoch'] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and s['refine_starts'] == 4.0
  assert s['top1'] == [100 * r['test_top1'] for r in fork_rows]
  assert s['R'] == [r['train_clean_loss'] for r in fork_rows] and s['Raug'] == [r['train_aug_loss'] for r in fork_rows]
  assert report.figure1_series(report.load_run(trunk))['refine_starts'] is None

  out = tmp_path / 'out'
  p = _ok(_cli('refine_jax.report', trunk, fork, other, f'--out={out}', f'--figure1={trunk}',
               f'--figure1={os.path.relpath(fork, ROOT)}'))  # relative to the cwd (ROOT): the same workdir
  md = (out / 'report.md').read_text()
  fig = [m for m in PNG_LINE.findall(md) if m[0] == 'figure1.png']
  assert fig == [('figure1.png', *map(str, report.FIG1_PIXELS))], md
  line = next(l for l in md.splitlines() if l.startswith('![figure 1]'))
  assert trunk in line and fork in line and other not in line
  with Image.open(out / 'figure1.png') as im:
    assert im.size == report.FIG1_PIXELS and im.format == 'PNG'
  assert p.returncode == 0 and len(PNG_LINE.findall(md)) == 1 + 2 * 3  # figure 1 + a pair per run

  # One run, or a workdir the report was not given: exit 2 naming the flag, nothing written.
  for bad, why in (([f'--figure1={trunk}'], 'two or more'), ([f'--figure1={trunk}', f'--figure1={tmp_path}'],
                                                              str(tmp_path))):
    out2 = tmp_path / 'out2'
    p = _cli('refine_jax.report', trunk, fork, f'--out={out2}', *bad)
    assert p.returncode == 2 and '--figure1' in p.stderr and why in p.stderr, p.stderr
    assert not out2.exists()


def test_the_same_run_twice_is_refused_naming_it(tmp_path):
  """`report W W`, or a copy of a run beside it (one experiment, one seed), would count as two seeds ("± 0.00");
  refused, naming the runs, nothing written. Two seeds of one experiment are a group of two."""
  import shutil
  a, _ = _hand_run(tmp_path, 'a', ['augmented'] * 3)
  b = str(tmp_path / 'b')
  shutil.copytree(a, b)
  for args, words in (([a, a], 'is given twice'), ([a, b], 'are the same run')):
    out = tmp_path / 'out'
    p = _cli('refine_jax.report', *args, f'--out={out}')
    assert p.returncode == 2 and words in p.stderr and 'seed 0' in p.stderr, p.stderr[-2000:]
    assert not out.exists()
  c, _ = _hand_run(tmp_path, 'c', ['augmented'] * 3, seed=1)
  p = _ok(_cli('refine_jax.report', a, c, f'--out={tmp_path / "ok"}'))
  assert '| G1 | 2 |' in (tmp_path / 'ok' / 'report.md').read_text()
