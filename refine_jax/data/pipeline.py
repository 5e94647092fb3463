"""Host input pipeline: per-epoch order, host augmentation, batching, pad+mask eval, global arrays.

The order of epoch `e` and the augmentation of the example at position `i` of that epoch are pure functions of
(seed, e, i), so a run restored at step s rebuilds the exact stream by starting at epoch s // steps_per_epoch
and skipping s % steps_per_epoch batches. Nothing is carried in iterator state. In-memory splits are held
whole by every process, which feeds its own rows of each global batch: the run is the same on 1 or N
processes. Streamed splits (ImageNet-scale) are read in disjoint per-process parts.

Which example goes where (each epoch's order, the positions and masks of eval batches, the augmentation seeds)
is computed here, in numpy. Host ops and streamed splits run in tf.data (`tf_pipeline`, imported only then); an
in-memory split under a spec without ops (`pp=''`, as every `synthetic` run) is gathered here in numpy into the
very same batches, and nothing imports TensorFlow.
"""
from __future__ import annotations

import math
import queue
import threading
from typing import Callable, Iterator, Optional

import numpy as np

from refine_jax.data import ops as ops_lib
from refine_jax.data.sources import Split
from refine_jax.errors import ConfigError

Batch = dict[str, np.ndarray]
_DIAG_EPOCH = 1 << 30  # the fixed "epoch" whose augmentation the R̂aug diagnostic uses


def epoch_seed(seed: int, epoch: int) -> int:
  """A 62-bit seed for one epoch's order and augmentation."""
  return int(np.random.default_rng([seed & 0xFFFFFFFF, epoch]).integers(1 << 62))


def _in_numpy(split: Split, op: ops_lib.Pipeline) -> bool:
  """An in-memory split under a spec without ops: batches are gathered in numpy, without TensorFlow."""
  return split.images is not None and not op.ops


def process_rows(sharding, global_batch: int) -> np.ndarray:
  """The rows of a global batch that this process's devices hold, in the order
  `jax.make_array_from_process_local_data` reads them from the local batch (sorted global rows).

  Feeding in-memory data by global row makes every global batch, and so the run, the same whatever the
  number of processes."""
  idx = sharding.addressable_devices_indices_map((global_batch,))
  return np.array(sorted({r for s in idx.values() for r in range(*s[0].indices(global_batch))}), np.int64)


def _all_rows(rows: Optional[np.ndarray], batch: int) -> np.ndarray:
  return np.arange(batch, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)


def train_batches(split: Split, pp_for_epoch: Callable[[int], ops_lib.Pipeline], *, batch: int,
                  steps_per_epoch: int, seed: int, start_step: int,
                  rows: Optional[np.ndarray] = None) -> Iterator[Batch]:
  """This process's rows (`rows`, default all) of the global training batches from step `start_step` on,
  epoch after epoch, forever.

  In memory, epoch e is one permutation of the whole split (rng [seed, e]) cut into global batches of `batch`,
  and the example at global position i of the epoch is augmented with seed [epoch_seed, i]: batches do not
  depend on the process count. Streamed splits (too large for memory) shuffle each process's own part, so
  their order does depend on it. `pp_for_epoch(e)` gives the host op of epoch e (it carries the per-epoch
  augmentation probability); in memory, consecutive epochs with the same op share one tf.data pipeline.
  """
  rows = _all_rows(rows, batch)
  epoch, skip = divmod(start_step, steps_per_epoch)
  while True:
    op = pp_for_epoch(epoch)
    if split.images is None:
      from refine_jax.data import tf_pipeline
      yield from tf_pipeline.stream_train_epoch(split, op, epoch_seed(seed, epoch), skip, steps_per_epoch, len(rows))
      done = [epoch]
    else:
      done: list[int] = []
      order = _memory_epochs(split, pp_for_epoch, op, seed, epoch, skip, steps_per_epoch, batch, rows, done)
      if _in_numpy(split, op):
        yield from ({'image': split.images[i], 'label': split.labels[i]} for index, _, _ in order for i in index)
      else:
        from refine_jax.data import tf_pipeline
        yield from tf_pipeline.memory_train_batches(split, op, order, len(rows))
    epoch, skip = done[-1] + 1, 0


def _memory_epochs(split: Split, pp_for_epoch, op, seed: int, first: int, skip: int, steps_per_epoch: int,
                   batch: int, rows: np.ndarray, done: list[int]) -> Iterator[tuple[np.ndarray, np.ndarray, np.int64]]:
  """(example indices, positions in the epoch, epoch seed) of this process's local batches ([steps, rows] each)
  of epochs first, first+1, ... while `pp_for_epoch` keeps returning `op`; `done` fills with the epochs produced."""
  e = first
  while pp_for_epoch(e) == op:  # the same spec and probability (ops.Pipeline compares by value)
    perm = np.random.default_rng([seed & 0xFFFFFFFF, e]).permutation(split.num_examples)
    steps = np.arange(skip if e == first else 0, steps_per_epoch, dtype=np.int64)
    pos = steps[:, None] * batch + rows[None, :]
    done.append(e)
    yield perm[pos].astype(np.int64), pos, np.int64(epoch_seed(seed, e))
    e += 1


def num_eval_batches(split: Split, batch: int, count: Optional[int] = None) -> int:
  """Batches every process runs to cover the split's first `count` (default all) examples once.

  In memory, global batch j holds examples [j * batch, (j + 1) * batch); streamed, each process covers the
  first count / process_count examples of its own part and pads to the largest part."""
  n = split.num_examples_global if count is None else min(count, split.num_examples_global)
  if split.images is not None:
    return max(1, math.ceil(n / batch))
  largest = math.ceil(n / split.process_count)
  return max(1, math.ceil(largest / (batch // split.process_count)))


def eval_batches(split: Split, op: ops_lib.Pipeline, *, batch: int, rows: Optional[np.ndarray] = None,
                 count: Optional[int] = None, aug_seed: int = 0, full_last: bool = False) -> Iterator[Batch]:
  """This process's rows of global batches that hold every example of `split` (or its first `count`) exactly
  once, in order, padded with mask=0 (zero images, label 0); `num_eval_batches` of them.

  `aug_seed` fixes the randomness of `op` (keyed by the example's position), so a random augmentation (the
  R̂aug diagnostic) is the same at every evaluation and for every process count.

  `full_last` (in-memory splits with more than one batch): the last batch holds the last `batch` examples,
  those already counted in the batch before with mask=0, instead of blank padding, so that on-device mixing,
  which draws each example's partner from its batch, never mixes a real example with a blank one. Streamed
  splits keep the blank padding.
  """
  rows = _all_rows(rows, batch)
  num_batches = num_eval_batches(split, batch, count)
  es = epoch_seed(aug_seed, _DIAG_EPOCH)
  if split.images is None:
    from refine_jax.data import tf_pipeline
    yield from tf_pipeline.stream_eval_batches(split, op, es, len(rows), num_batches, count)
    return
  n = split.num_examples if count is None else min(count, split.num_examples)
  counted_from = np.arange(num_batches, dtype=np.int64)[:, None] * batch + np.zeros_like(rows)[None, :]
  pos = counted_from + rows[None, :]
  full_last = full_last and n > batch and n % batch > 0
  if full_last:
    pos[-1] -= num_batches * batch - n
  if not _in_numpy(split, op):
    from refine_jax.data import tf_pipeline
    yield from tf_pipeline.memory_eval_batches(split, op, pos, counted_from, n, es, blank=not full_last)
    return
  for p, lo in zip(pos, counted_from):
    i, keep = np.minimum(p, n - 1), (p < n) & (p >= lo)
    image, label = split.images[i], split.labels[i]
    if not full_last:  # full_last: the masked rows are real examples, kept
      image[~keep], label[~keep] = 0, 0
    yield {'image': image, 'label': label, 'mask': keep.astype(np.float32)}


def to_global(batch: Batch, sharding) -> dict:
  """Assembles the processes' local batches into global jax.Arrays sharded along the batch axis."""
  import jax
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


class DevicePrefetch:
  """An iterator of device batches, `put(host_batch)` of each host batch in order, kept `depth` ahead.

  A background thread takes batches from `host`, puts them on device (`put`, normally `to_global`) and queues
  them, so batches k+1..k+depth are produced and transferred while step k runs. The order is `host`'s: the
  loop sees exactly the batches it would have pulled itself. An exception in the thread is raised, the
  original one, by the `next()` that would have returned the failing batch. `close()` (or leaving the `with`)
  stops the thread, waits for it, and closes `host` in it (a generator is closed in the thread that runs it).
  """

  _END = object()

  def __init__(self, host: Iterator, put: Callable, depth: int):
    if depth < 1:
      raise ValueError(f'depth must be >= 1, got {depth}')
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, args=(host, put), name='device-prefetch', daemon=True)
    self._thread.start()

  def _offer(self, item) -> bool:
    """Queues `item` unless asked to stop first (a full queue is re-tried every 50 ms)."""
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def _produce(self, host: Iterator, put: Callable) -> None:
    try:
      for b in host:
        if not self._offer((put(b), None)):
          return
      self._offer((self._END, None))
    except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
      self._offer((None, e))
    finally:
      _close(host)

  def __iter__(self) -> 'DevicePrefetch':
    return self

  def __next__(self):
    if self._stop.is_set():
      raise StopIteration
    item, error = self._queue.get()
    if error is not None:
      self.close()
      raise error
    if item is self._END:
      self.close()
      raise StopIteration
    return item

  def close(self) -> None:
    self._stop.set()
    while self._thread.is_alive():
      try:  # unblocks a producer waiting on a full queue at once
        while True:
          self._queue.get_nowait()
      except queue.Empty:
        pass
      self._thread.join(timeout=0.05)

  def __enter__(self) -> 'DevicePrefetch':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _close(host: Iterator) -> None:
  """Closes a host iterator that can be closed (a generator); others need nothing."""
  close = getattr(host, 'close', None)
  if close is not None:
    close()


def device_batches(host: Iterator[Batch], sharding, depth: int):
  """`host`'s batches as global device arrays: prefetched `depth` ahead by a thread (`DevicePrefetch`), or, with
  depth 0, put on device by the caller's `next()` itself. Either way a context manager that closes `host`."""
  if depth:
    return DevicePrefetch(host, lambda b: to_global(b, sharding), depth)
  return _Inline(host, sharding)


class _Inline:
  """`device_batches` without a thread (depth 0): each `next()` reads the host batch and transfers it."""

  def __init__(self, host: Iterator[Batch], sharding):
    self._host, self._sharding = host, sharding

  def __iter__(self) -> '_Inline':
    return self

  def __next__(self):
    return to_global(next(self._host), self._sharding)

  def close(self) -> None:
    _close(self._host)

  def __enter__(self) -> '_Inline':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def output_shape(split: Split, op: ops_lib.Pipeline) -> tuple[int, ...]:
  """The shape `op` gives an example of `split` (runs it once on the first example)."""
  if _in_numpy(split, op):
    return tuple(split.images.shape[1:])
  from refine_jax.data import tf_pipeline
  return tf_pipeline.output_shape(split, op)


def check_image_size(split: Split, op: ops_lib.Pipeline, spec: str, field: str, what: str,
                     size: Optional[int]) -> None:
  """Raises ConfigError('image_size') when `op` does not give the model `size` x `size` images of `split` (run
  once on its first example, after `check_sizes`); nothing is checked when `size` is None."""
  if size is None:
    return
  h, w = output_shape(split, op)[:2]
  if (h, w) != (size, size):
    raise ConfigError('image_size', f'{size}, but {field} {spec!r} gives the model {h}x{w} images of the {what} '
                      f'split; allowed: image_size={h} if that is meant (or None: no check), or end {field} with '
                      f'an op that makes {size}x{size} images (resize({size}), center_crop({size}), '
                      f'pad_crop({size},4), ...)')


def check_sizes(split: Split, op: ops_lib.Pipeline, spec: str, field: str, what: str) -> None:
  """Runs `op` once on an image of each size `split` holds (known at start-up); raises ConfigError naming the op,
  the size and a file of that size when an op cannot take it, or when sizes give different output shapes (one
  batch needs one shape). Nothing is checked for a TFDS stream (sizes unknown before reading), nor for an
  in-memory split without ops (one size, and no op to fail on it)."""
  if _in_numpy(split, op):
    return
  from refine_jax.data import tf_pipeline
  tf_pipeline.check_sizes(split, op, spec, field, what)
