"""bench/evidence.py's statistics on hand-made workdirs (no training): per-arm mean ± std, the window median,
the paired differences per seed, the regime check, every run listed, and the resumable skip of finished runs."""
import json
import os
import statistics
import types

from bench import evidence
from refine_jax import report


def _write_run(w, rows, total_steps, forked_from=None):
  os.makedirs(w)
  with open(os.path.join(w, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in rows)
  with open(os.path.join(w, 'summary.json'), 'w') as f:
    json.dump({'total_steps': total_steps, 'final_top1': rows[-1]['test_top1']}, f)
  with open(os.path.join(w, 'config.json'), 'w') as f:
    json.dump({'forked_from': forked_from} if forked_from else {}, f)


def _rows(top1s, phases, spe=10):
  return [{'step': spe * (i + 1), 'epoch': float(i + 1), 'phase': p, 'test_top1': t, 'train_clean_loss': 0.01 * (i + 1),
           'train_aug_loss': 0.1 * (i + 1)} for i, (t, p) in enumerate(zip(top1s, phases))]


def test_tables_give_the_paired_differences_per_seed(tmp_path):
  a = types.SimpleNamespace(root=str(tmp_path), epochs=4, refine_epochs=2, width=16, train_split='train[:100]', pp='flip_lr',
                            batch=10, diag=50)
  top1 = {  # arm: per seed, the test top-1 of its evals (epochs 1..n)
      'mixup': ([.50, .60, .70, .72], [.52, .58, .66, .70]),
      'mixup_ref': ([.50, .60, .70, .72, .75, .77], [.52, .58, .66, .70, .74, .73]),
  }
  stats = {}
  for arm, per_seed in top1.items():
    for seed, t in enumerate(per_seed):
      phases = ['augmented'] * 4 + ['refine'] * (len(t) - 4)
      fork = {'workdir': evidence.workdir(a, 'mixup', seed), 'step': 40} if arm == 'mixup_ref' else None
      w = evidence.workdir(a, arm, seed)
      _write_run(w, _rows(t, phases), 10 * len(t), fork)
      assert evidence.finished(w)
      stats[(arm, seed)] = evidence.run_stats(report.load_run(w), a.refine_epochs)
  s = stats[('mixup_ref', 1)]
  assert s['final_top1'] == .73 and s['median_window_top1'] == statistics.median([.74, .73])  # the evals after the switch
  assert s['switch_R'] == 0.04 and abs(s['switch_Raug'] - 0.4) < 1e-12
  text = evidence.tables(a, stats, [0, 1])
  d = [.77 - .72, .73 - .70]
  # Two seeds: the 95 % interval is mean ± t(0.975, 1 df) · sd / √2, t = 12.706 (a table of Student's t).
  half = 12.706 * statistics.stdev(d) / 2 ** 0.5
  ci = f'[{100 * (statistics.mean(d) - half):+.2f}, {100 * (statistics.mean(d) + half):+.2f}]'
  want = f'{100 * statistics.mean(d):.2f} ± {100 * statistics.stdev(d):.2f} | {ci} | +5.00, +3.00'
  assert want in text, text
  assert evidence.interval([0.01]) == '–'
  assert '| Mixup (T) + refinement (r) | 75.00 ± 2.83 |' in text, text  # mean/std of .77, .73
  assert 'step 40 of mixup_seed0, step 40 of mixup_seed1' in text and '77.00, 73.00' in text, text
  assert 'CutMix' not in text  # arms without runs are left out, never invented
  assert 'Mixup at the switch, R̂aug / R̂: 0.400 / 0.0400 = 10.0' in evidence.regime(stats, [0, 1])


def test_an_unfinished_run_is_not_skipped(tmp_path):
  w = str(tmp_path / 'w')
  _write_run(w, _rows([.5, .6], ['augmented'] * 2), total_steps=40)  # 20 of 40 steps
  assert not evidence.finished(w)
  assert not evidence.finished(str(tmp_path / 'missing'))
