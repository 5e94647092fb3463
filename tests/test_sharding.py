"""Sharding over a device mesh: 8 host devices agree with 1, and eval scores every example exactly once."""
import collections

import numpy as np
import pytest

from configs import digits_demo
from refine_jax.data import ops, pipeline, sources
from tests.conftest import read_rows, run_main


def test_eight_devices_match_one_device_without_mixing(tmp_path):
  """Same data, same steps; only the reduction order differs (BN statistics and gradient sums across 8 shards),
  so values agree to float rounding, which SGD amplifies slowly: a short, gentle run keeps it below 1e-4."""
  args = ['--config.phases.augmented.steps=4', '--config.phases.refine.steps=2', '--config.eval_every_steps=2',
          '--config.phases.augmented.lr.base=0.02', '--config.phases.augmented.mix.kind=none',
          '--config.batch_size=64', '--config.eval_batch_size=40']
  one, eight = str(tmp_path / 'one'), str(tmp_path / 'eight')
  run_main('digits_demo.py', one, *args, devices=1)
  p = run_main('digits_demo.py', eight, *args, devices=8)
  assert "mesh {'data': 8}" in p.stderr
  r1, r8 = read_rows(one), read_rows(eight)
  assert [r['step'] for r in r1] == [r['step'] for r in r8]
  for a, b in zip(r1, r8):
    assert a['test_count'] == b['test_count'] == 360
    for k in ('test_loss', 'train_clean_loss', 'train_aug_loss'):
      assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-4), (k, a[k], b[k])
    for k in ('test_top1', 'test_top5'):  # a near-tie may flip one of the 360 examples
      assert abs(b[k] - a[k]) <= 1 / 360 + 1e-9, (k, a[k], b[k])


@pytest.mark.parametrize('process_count', [1, 2, 3])
@pytest.mark.parametrize('global_batch', [6, 48, 120, 1000])
def test_eval_scores_every_example_exactly_once(process_count, global_batch):
  """Each process's padded batches, masked, cover the split once; every process runs the same batch count."""
  c = digits_demo.get_config()
  if global_batch % process_count:
    pytest.skip('batch not divisible by process count')
  op = ops.build('', 1.0)
  seen = collections.Counter()
  n_batches = pipeline.num_eval_batches(360, global_batch, process_count)
  for pid in range(process_count):
    split = sources.load(c, 'test', train=False, process_index=pid, process_count=process_count)
    got = list(pipeline.eval_batches(split, op, local_batch=global_batch // process_count,
                                     num_batches=n_batches))
    assert len(got) == n_batches
    for b in got:
      assert b['image'].shape[0] == global_batch // process_count
      for img, m in zip(b['image'], b['mask']):
        if m:
          seen[img.tobytes()] += 1
  full = sources.load(c, 'test', train=False)
  want = collections.Counter(img.tobytes() for img in full.images)
  assert seen == want and sum(seen.values()) == 360


def test_train_order_is_a_pure_function_of_seed_and_epoch():
  c = digits_demo.get_config()
  split = sources.load(c, 'train', train=True)
  op = ops.build('pad_crop(16,2)')
  kw = dict(local_batch=32, steps_per_epoch=44, seed=3)
  a = pipeline.train_batches(split, lambda e: op, start_step=0, **kw)
  first = [next(a) for _ in range(50)]
  b = pipeline.train_batches(split, lambda e: op, start_step=47, **kw)  # epoch 1, batch 3
  for want in first[47:]:
    got = next(b)
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])
  # an epoch visits 44 * 32 distinct training examples
  labels0 = np.concatenate([x['label'] for x in first[:44]])
  assert len(labels0) == 1408
  assert not np.array_equal(first[0]['label'], first[44]['label'])  # epochs are reshuffled
