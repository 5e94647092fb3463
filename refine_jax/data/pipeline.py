"""Host input pipeline: per-epoch order, host augmentation, batching, pad+mask eval, global arrays.

The order of epoch `e` and the augmentation of the example at position `i` of that epoch are pure functions of
(seed, e, i), so a run restored at step s rebuilds the exact stream by starting at epoch s // steps_per_epoch
and skipping s % steps_per_epoch batches. Nothing is carried in iterator state. In-memory splits are held
whole by every process, which feeds its own rows of each global batch: the run is the same on 1 or N
processes. Streamed splits (ImageNet-scale) are read in disjoint per-process parts.

In memory a batch is built whole (gather, each image's draws, the spec's batch ops: see data/ops.py); streamed
examples go through the spec's example ops (decode, crops) one by one, then its batch ops per batch. Either way
an image's pixels depend on its own seed only, never on the batch it lands in.
"""
from __future__ import annotations

import math
import queue
import threading
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from refine_jax.data import ops as ops_lib
from refine_jax.data.sources import Split
from refine_jax.errors import ConfigError

Batch = dict[str, np.ndarray]
_DIAG_EPOCH = 1 << 30  # the fixed "epoch" whose augmentation the R̂aug diagnostic uses


def _options() -> tf.data.Options:
  o = tf.data.Options()
  o.deterministic = True
  o.experimental_optimization.map_parallelization = True
  return o


def epoch_seed(seed: int, epoch: int) -> int:
  """A 62-bit seed for one epoch's order and augmentation."""
  return int(np.random.default_rng([seed & 0xFFFFFFFF, epoch]).integers(1 << 62))


def _images_tensor(split: Split) -> tf.Tensor:
  # One host copy for the whole run; the per-epoch datasets gather from it by index.
  if not hasattr(split, '_tf_images'):
    split._tf_images = tf.constant(split.images)
    split._tf_labels = tf.constant(split.labels)
  return split._tf_images, split._tf_labels


def _finish(d: dict, image: tf.Tensor) -> dict:
  return {'image': image, **{k: d[k] for k in ('label', 'mask') if k in d}}


def _augment_examples(ds: tf.data.Dataset, op: ops_lib.Pipeline, batch: int, *,
                      drop_remainder: bool) -> tf.data.Dataset:
  """Examples {'image', 'label', 'seed', ['mask']} -> augmented batches {'image', 'label', ['mask']}.

  The op's example ops run per example; its trailing batch ops once per batch, when the examples then have
  one fixed shape (else everything runs per example: the same pixels either way)."""
  head = ds.map(lambda ex: {**ex, 'image': op.example(ex['image'], ex['seed'])},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if op.has_tail and head.element_spec['image'].shape.is_fully_defined():
    return head.batch(batch, drop_remainder=drop_remainder).map(
        lambda b: _finish(b, op.batch(b['image'], b['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
  return ds.map(lambda ex: _finish(ex, op(ex['image'], ex['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).batch(batch, drop_remainder=drop_remainder)


def _augment_batches(ds: tf.data.Dataset, op: ops_lib.Pipeline, batch: int) -> tf.data.Dataset:
  """Batches of decoded same-shape images {'image', 'label', 'seed' [B, 2], ['mask']} -> augmented batches.

  In memory the whole pipeline can work batch by batch (gather, draws, ops): nothing runs per example unless
  the spec has example ops."""
  if op.tail_start == 0:
    return ds.map(lambda b: _finish(b, op.batch(b['image'], b['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
  return _augment_examples(ds.unbatch(), op, batch, drop_remainder=False)


def process_rows(sharding, global_batch: int) -> np.ndarray:
  """The rows of a global batch that this process's devices hold, in the order
  `jax.make_array_from_process_local_data` reads them from the local batch (sorted global rows).

  Feeding in-memory data by global row makes every global batch, and so the run, the same whatever the
  number of processes."""
  idx = sharding.addressable_devices_indices_map((global_batch,))
  return np.array(sorted({r for s in idx.values() for r in range(*s[0].indices(global_batch))}), np.int64)


def _all_rows(rows: Optional[np.ndarray], batch: int) -> np.ndarray:
  return np.arange(batch, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)


def _stream_examples(split: Split, order_seed: int, count: int, *, shuffle: bool) -> tf.data.Dataset:
  """The first `count` {image, label} of this process's stream, in order or shuffled with a fixed seed."""
  ds = split.stream(order_seed % (1 << 31))
  if shuffle and not split.stream_shuffled:
    ds = ds.shuffle(16384, seed=order_seed % (1 << 31), reshuffle_each_iteration=False)
  return ds.take(count)


def train_batches(split: Split, pp_for_epoch: Callable[[int], ops_lib.Pipeline], *, batch: int,
                  steps_per_epoch: int, seed: int, start_step: int,
                  rows: Optional[np.ndarray] = None) -> Iterator[Batch]:
  """This process's rows (`rows`, default all) of the global training batches from step `start_step` on,
  epoch after epoch, forever.

  In memory, epoch e is one permutation of the whole split (rng [seed, e]) cut into global batches of `batch`,
  and the example at global position i of the epoch is augmented with seed [epoch_seed, i]: batches do not
  depend on the process count. Streamed splits (too large for memory) shuffle each process's own part, so
  their order does depend on it. `pp_for_epoch(e)` gives the host op of epoch e (it carries the per-epoch
  augmentation probability); in memory, consecutive epochs with the same op share one tf.data pipeline
  (tracing AutoAugment's graph costs seconds, the epoch's work a fraction of that on small data).
  """
  rows = _all_rows(rows, batch)
  local_batch = len(rows)
  epoch, skip = divmod(start_step, steps_per_epoch)
  while True:
    op = pp_for_epoch(epoch)
    if split.images is None:
      ds = _stream_epoch(split, seed, epoch, skip, steps_per_epoch * local_batch, local_batch)
      ds, epochs_done = _augment_examples(ds, op, local_batch, drop_remainder=True), [epoch]
    else:
      ds, epochs_done = _memory_epochs(split, pp_for_epoch, op, seed, epoch, skip, steps_per_epoch, batch, rows)
      ds = _augment_batches(ds, op, local_batch)
    ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
    yield from ds.as_numpy_iterator()
    epoch, skip = epochs_done[-1] + 1, 0


def _memory_epochs(split: Split, pp_for_epoch, op, seed: int, first: int, skip: int, steps_per_epoch: int,
                   batch: int, rows: np.ndarray) -> tuple[tf.data.Dataset, list[int]]:
  """This process's local batches {'image', 'label', 'seed'} of epochs first, first+1, ... while
  `pp_for_epoch` keeps returning `op`; the list it returns fills with the epochs actually produced."""
  images, labels = _images_tensor(split)
  done: list[int] = []

  def epochs():
    e = first
    while pp_for_epoch(e) is op:
      perm = np.random.default_rng([seed & 0xFFFFFFFF, e]).permutation(split.num_examples)
      steps = np.arange(skip if e == first else 0, steps_per_epoch, dtype=np.int64)
      pos = steps[:, None] * batch + rows[None, :]
      done.append(e)
      yield perm[pos].astype(np.int64), pos, np.int64(epoch_seed(seed, e))
      e += 1

  spec = (tf.TensorSpec([None, len(rows)], tf.int64), tf.TensorSpec([None, len(rows)], tf.int64),
          tf.TensorSpec([], tf.int64))
  ds = tf.data.Dataset.from_generator(epochs, output_signature=spec)
  ds = ds.flat_map(lambda idx, pos, es: tf.data.Dataset.from_tensor_slices(
      {'index': idx, 'pos': pos, 'es': tf.fill(tf.shape(idx)[:1], es)}))
  ds = ds.map(lambda b: {'image': tf.gather(images, b['index']), 'label': tf.gather(labels, b['index']),
                         'seed': _seeds(b['es'], b['pos'])}, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return ds, done


def _seeds(es: tf.Tensor, pos: tf.Tensor) -> tf.Tensor:
  """Augmentation seeds [..., 2] of the examples at positions `pos` of the epoch with seed `es`."""
  return tf.stack([tf.broadcast_to(tf.cast(es, tf.int64), tf.shape(pos)), pos], axis=-1)


def _stream_epoch(split: Split, seed: int, epoch: int, skip: int, per_epoch: int,
                  local_batch: int) -> tf.data.Dataset:
  es = epoch_seed(seed, epoch)
  ds = tf.data.Dataset.zip((_stream_examples(split, es, per_epoch, shuffle=True),
                            tf.data.Dataset.range(per_epoch)))
  ds = ds.skip(skip * local_batch)
  # Positions interleave the processes' parts so that no two examples share an augmentation seed.
  return ds.map(lambda ex, pos: {'image': ex['image'], 'label': ex['label'],
                                 'seed': _seeds(es, pos * split.process_count + split.process_index)})


def steps_per_epoch(split: Split, batch: int) -> int:
  """Whole global batches in one pass over the split (the remainder is dropped each epoch)."""
  return split.num_examples_global // batch


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
  local_batch = len(rows)
  num_batches = num_eval_batches(split, batch, count)
  es = epoch_seed(aug_seed, _DIAG_EPOCH)
  if split.images is not None:
    n = split.num_examples if count is None else min(count, split.num_examples)
    images, labels = _images_tensor(split)
    counted_from = np.arange(num_batches, dtype=np.int64)[:, None] * batch + np.zeros_like(rows)[None, :]
    pos = counted_from + rows[None, :]
    full_last = full_last and n > batch and n % batch > 0
    if full_last:
      pos[-1] -= num_batches * batch - n

    def gather(p, lo):
      i = tf.minimum(p, n - 1)
      return {'image': tf.gather(images, i), 'label': tf.gather(labels, i), 'seed': _seeds(es, p),
              'mask': tf.cast((p < n) & (p >= lo), tf.float32)}

    def blank_padding(b):
      keep = b['mask'] > 0

      def blank():  # only a last, partly padded batch pays for the select
        return {'image': tf.where(keep[:, None, None, None], b['image'], tf.zeros_like(b['image'])),
                'label': tf.where(keep, b['label'], tf.zeros_like(b['label'])), 'mask': b['mask']}
      return tf.cond(tf.reduce_all(keep), lambda: b, blank)

    ds = tf.data.Dataset.from_tensor_slices((pos, counted_from)).map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                                     deterministic=True)
    ds = _augment_batches(ds, op, local_batch)
    ds = ds if full_last else ds.map(blank_padding)  # full_last: the masked rows are real examples, kept
    yield from ds.prefetch(tf.data.AUTOTUNE).with_options(_options()).as_numpy_iterator()
    return
  n = split.num_examples if count is None else min(count // split.process_count, split.num_examples)
  ds = tf.data.Dataset.zip((_stream_examples(split, es, n, shuffle=False), tf.data.Dataset.range(n)))
  ds = ds.map(lambda ex, pos: {'image': ex['image'], 'label': ex['label'],
                               'seed': _seeds(es, pos * split.process_count + split.process_index)})
  ds = _augment_examples(ds, op, local_batch, drop_remainder=False)
  ds = ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
  produced, template = 0, None
  for b in ds.as_numpy_iterator():
    k = len(b['label'])
    b = {key: _pad(v, local_batch) for key, v in b.items()}
    b['mask'] = (np.arange(local_batch) < k).astype(np.float32)
    template = b
    produced += 1
    yield b
  if template is None:  # this process holds no example: shape the padding from the op's output
    img = op(tf.zeros([8, 8, 3], tf.uint8), tf.constant([0, 0], tf.int64)).numpy()
    template = {'image': np.zeros((local_batch,) + img.shape, img.dtype),
                'label': np.zeros(local_batch, np.int32)}
  for _ in range(produced, num_batches):
    yield {'image': np.zeros_like(template['image']), 'label': np.zeros_like(template['label']),
           'mask': np.zeros(local_batch, np.float32)}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  if len(x) == size:
    return x
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


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
  img = split.images[0] if split.images is not None else next(iter(split.stream(0).take(1)))['image']
  return tuple(op(tf.convert_to_tensor(img), tf.constant([0, 0], tf.int64)).shape)


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


def _first_failing_op(op: ops_lib.Pipeline, spec: str, field: str, image: tf.Tensor) -> str:
  """The name (and arguments) of the first op of `spec` that fails on `image`."""
  parsed = ops_lib._parse(spec, field)  # noqa: SLF001 - the op names of a spec, as built
  for k in range(1, len(op.ops) + 1):
    try:
      ops_lib.Pipeline(op.ops[:k], op.takes_encoded)(image, tf.constant([0, 0], tf.int64))
    except Exception:  # noqa: BLE001 - the op that cannot take the image
      name, args = parsed[k - 1]
      return f'{name}{args if args else ""}'
  return 'the decode'


def check_sizes(split: Split, op: ops_lib.Pipeline, spec: str, field: str, what: str) -> None:
  """Runs `op` once on an image of each size `split` holds (known at start-up); raises ConfigError naming the op,
  the size and a file of that size when an op cannot take it, or when sizes give different output shapes (one
  batch needs one shape). Nothing is checked for a TFDS stream (sizes unknown before reading)."""
  shapes = {}
  for (h, w), (n, path) in sorted((split.image_sizes or {}).items()):
    image = tf.io.encode_png(tf.zeros([h, w, 3], tf.uint8))
    example = f' (e.g. {path})' if path else ''
    try:
      shapes[(h, w)] = tuple(op(image, tf.constant([0, 0], tf.int64)).shape)
    except Exception as e:  # noqa: BLE001 - any failure of the ops on this size
      raise ConfigError(field, f'op {_first_failing_op(op, spec, field, image)} of {spec!r} cannot take the '
                        f'{h}x{w} images of the {what} split{example} ({type(e).__name__}); fix the op\'s size, or '
                        f'start {field} with resize(N) or center_crop(N)') from None
  if len(set(shapes.values())) > 1:
    zb = min(shapes)
    za = next(z for z in shapes if shapes[z] != shapes[zb])
    sa, sb, path = shapes[za], shapes[zb], split.image_sizes[za][1]
    raise ConfigError(field, f'{spec!r} turns the {za[0]}x{za[1]} images of the {what} split (e.g. {path}) into '
                      f'{sa} but the {zb[0]}x{zb[1]} ones into {sb}; a batch needs one shape: start {field} with '
                      'resize(N) (bilinear, to N x N), or make the images one size')
  if len(shapes) > 1:
    logging.warning('%s: the %s split holds images of %d sizes (%s); %r brings all to %s', field, what,
                    len(shapes), ', '.join(f'{h}x{w}: {split.image_sizes[(h, w)][0]}' for h, w in shapes), spec,
                    next(iter(shapes.values())))
