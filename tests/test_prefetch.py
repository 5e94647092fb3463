"""The device prefetch (issue 16): the loop gets the very batches, in the very order, it would read itself; a
failure in the thread reaches the loop as the original exception; no thread outlives the iterator. (A run with
the prefetch off ends bit for bit on one with it on: tests/test_resume.py, `prefetch_off`.)"""
from __future__ import annotations

import threading
import time

import ml_collections
import numpy as np
import pytest

from refine_jax import config as config_lib
from refine_jax import registries
from refine_jax.data import pipeline
from refine_jax.errors import ConfigError

THREAD = 'device-prefetch'


def _threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name == THREAD]


class Source:
  """A host iterator of numbered batches that records how far it was read and whether it was closed."""

  def __init__(self, n=None, fail_at=None):
    self.n, self.fail_at, self.read, self.closed = n, fail_at, 0, False
    self.error = RuntimeError(f'decode failed at batch {fail_at}')

  def __iter__(self):
    try:
      i = 0
      while self.n is None or i < self.n:
        if i == self.fail_at:
          raise self.error
        self.read = i + 1
        yield {'image': np.full((2, 3), i, np.uint8), 'label': np.array([i, -i])}
        i += 1
    finally:
      self.closed = True


@pytest.mark.parametrize('depth', [1, 2, 3])
def test_same_batches_in_the_same_order_then_the_thread_ends(depth):
  src = Source(n=7)
  got = list(pipeline.DevicePrefetch(iter(src), lambda b: {k: v * 2 for k, v in b.items()}, depth))
  want = [{'image': np.full((2, 3), 2 * i, np.uint8), 'label': np.array([2 * i, -2 * i])} for i in range(7)]
  assert len(got) == 7 and all(g.keys() == w.keys() for g, w in zip(got, want))
  assert all(np.array_equal(g[k], w[k]) and g[k].dtype == w[k].dtype for g, w in zip(got, want) for k in w)
  assert src.closed and not _threads()


@pytest.mark.parametrize('depth', [1, 2, 4])
def test_the_thread_reads_exactly_depth_ahead_and_close_stops_an_endless_source(depth):
  """While the loop holds batch k, the thread has put k+1..k+depth on device and reads one more (blocked on the
  full queue): never further. close() stops it, closes the source in its thread, and leaves no thread."""
  src = Source()
  it = pipeline.DevicePrefetch(iter(src), lambda b: b, depth)
  with it:
    for k in range(3):
      b = next(it)
      assert int(b['image'][0, 0]) == k
      deadline = time.monotonic() + 30
      while src.read < k + 1 + depth + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
      time.sleep(0.05)  # had it read further, it would have by now
      assert src.read == k + 1 + depth + 1, (k, src.read)
  assert src.closed and not _threads()
  with pytest.raises(StopIteration):
    next(it)


def test_an_error_in_the_thread_reaches_the_loop_as_the_original_exception_after_the_batches_before_it():
  src = Source(n=10, fail_at=3)
  it = pipeline.DevicePrefetch(iter(src), lambda b: b, 2)
  got = [int(next(it)['image'][0, 0]) for _ in range(3)]
  with pytest.raises(RuntimeError) as e:
    next(it)
  assert got == [0, 1, 2] and e.value is src.error
  assert src.closed and not _threads()


def test_an_error_in_the_transfer_reaches_the_loop_too():
  def put(b):
    if int(b['image'][0, 0]) == 1:
      raise ValueError('no device memory left')
    return b
  with pipeline.DevicePrefetch(iter(Source(n=5)), put, 2) as it:
    assert int(next(it)['image'][0, 0]) == 0
    with pytest.raises(ValueError, match='no device memory left'):
      next(it)
  assert not _threads()


@pytest.mark.parametrize('bad', [-1, 65, 1.5, True, '2'])
def test_a_bad_depth_is_refused_naming_the_field(bad):
  from configs import digits_demo
  c = ml_collections.ConfigDict(digits_demo.get_config().to_dict(), type_safe=False)
  c.prefetch_to_device = bad
  with pytest.raises(ConfigError) as e:
    config_lib.validate(c, registries.default())
  assert e.value.field == 'prefetch_to_device' and '[0, 64]' in str(e.value)
