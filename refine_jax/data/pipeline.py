"""Host input pipeline: per-epoch order, host augmentation, batching, pad+mask eval, global arrays.

The order of epoch `e` and the augmentation of the example at position `i` of that epoch are pure functions of
(seed, e, i), so a run restored at step s rebuilds the exact stream by starting at epoch s // steps_per_epoch
and skipping s % steps_per_epoch batches. Nothing is carried in iterator state.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow as tf

from refine_jax.data import ops as ops_lib
from refine_jax.data.sources import Split

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


def _examples(split: Split, order_seed: int, count: int, *, shuffle: bool = False) -> tf.data.Dataset:
  """The first `count` {image, label} of the split in order, or of its stream shuffled with a fixed-seed buffer.

  (In-memory training epochs are ordered by `_memory_epochs` instead.)
  """
  if split.images is not None:
    images, labels = _images_tensor(split)
    idx = tf.data.Dataset.range(count)
    return idx.map(lambda i: {'image': tf.gather(images, i), 'label': tf.gather(labels, i)},
                   num_parallel_calls=tf.data.AUTOTUNE)
  ds = split.stream(order_seed % (1 << 31))
  if shuffle:
    ds = ds.shuffle(16384, seed=order_seed % (1 << 31), reshuffle_each_iteration=False)
  return ds.take(count)


def train_batches(split: Split, pp_for_epoch: Callable[[int], ops_lib.Op], *, local_batch: int,
                  steps_per_epoch: int, seed: int, start_step: int, process_index: int = 0,
                  process_count: int = 1) -> Iterator[Batch]:
  """Local training batches from global step `start_step` on, epoch after epoch, forever.

  `pp_for_epoch(e)` gives the host op of epoch e (it carries the per-epoch augmentation probability). For
  in-memory splits, consecutive epochs with the same op share one tf.data pipeline (tracing AutoAugment's graph
  costs seconds, the epoch's work a fraction of that on small data); a new op starts a new pipeline.
  """
  epoch, skip = divmod(start_step, steps_per_epoch)
  per_epoch = steps_per_epoch * local_batch
  while True:
    op = pp_for_epoch(epoch)
    if split.images is None:
      ds, epochs_done = _stream_epoch(split, seed, epoch, skip, per_epoch, local_batch), [epoch]
    else:
      ds, epochs_done = _memory_epochs(split, pp_for_epoch, op, seed, epoch, skip, per_epoch, local_batch,
                                       process_index)

    def prep(ex, op=op):
      s = tf.stack([ex['es'], ex['pos'] * process_count + process_index])
      return {'image': op(ex['image'], s), 'label': ex['label']}

    ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(_options())
    yield from ds.as_numpy_iterator()
    epoch, skip = epochs_done[-1] + 1, 0


def _memory_epochs(split: Split, pp_for_epoch, op, seed: int, first: int, skip: int, per_epoch: int,
                   local_batch: int, process_index: int) -> tuple[tf.data.Dataset, list[int]]:
  """Examples of epochs first, first+1, ... while `pp_for_epoch` keeps returning `op`; the list it returns
  fills with the epochs actually produced."""
  images, labels = _images_tensor(split)
  done: list[int] = []

  def epochs():
    e = first
    while pp_for_epoch(e) is op:
      perm = np.random.default_rng([seed & 0xFFFFFFFF, e, process_index]).permutation(split.num_examples)
      start = skip * local_batch if e == first else 0
      done.append(e)
      yield (perm[start:per_epoch].astype(np.int64), np.arange(start, per_epoch, dtype=np.int64),
             np.int64(epoch_seed(seed, e)))
      e += 1

  spec = (tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.int64))
  ds = tf.data.Dataset.from_generator(epochs, output_signature=spec)
  ds = ds.flat_map(lambda idx, pos, es: tf.data.Dataset.from_tensor_slices(
      {'index': idx, 'pos': pos, 'es': tf.fill(tf.shape(idx), es)}))
  ds = ds.map(lambda ex: {'image': tf.gather(images, ex['index']), 'label': tf.gather(labels, ex['index']),
                          'pos': ex['pos'], 'es': ex['es']}, num_parallel_calls=tf.data.AUTOTUNE)
  return ds, done


def _stream_epoch(split: Split, seed: int, epoch: int, skip: int, per_epoch: int,
                  local_batch: int) -> tf.data.Dataset:
  es = epoch_seed(seed, epoch)
  ds = tf.data.Dataset.zip((_examples(split, es, per_epoch, shuffle=True), tf.data.Dataset.range(per_epoch)))
  ds = ds.skip(skip * local_batch)
  return ds.map(lambda ex, pos: {'image': ex['image'], 'label': ex['label'], 'pos': pos,
                                 'es': tf.constant(es, tf.int64)})


def num_eval_batches(num_examples_global: int, global_batch: int, process_count: int) -> int:
  """Batches every process runs so that the largest process part is covered (others pad)."""
  largest = math.ceil(num_examples_global / process_count)
  return max(1, math.ceil(largest / (global_batch // process_count)))


def eval_batches(split: Split, op: ops_lib.Op, *, local_batch: int, num_batches: int,
                 count: Optional[int] = None, aug_seed: int = 0) -> Iterator[Batch]:
  """Every example of `split` (or its first `count`) exactly once, in order, padded with mask=0.

  `aug_seed` fixes the randomness of `op`, so a random augmentation (the R̂aug diagnostic) is the same at
  every evaluation.
  """
  n = split.num_examples if count is None else min(count, split.num_examples)
  es = epoch_seed(aug_seed, _DIAG_EPOCH)
  ds = tf.data.Dataset.zip((_examples(split, es, n),
                            tf.data.Dataset.range(n)))

  def prep(ex, pos):
    return {'image': op(ex['image'], tf.stack([tf.constant(es, tf.int64), pos])), 'label': ex['label']}

  ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch).prefetch(tf.data.AUTOTUNE).with_options(_options())
  produced, template = 0, None
  for b in ds.as_numpy_iterator():
    k = len(b['label'])
    b = {key: _pad(v, local_batch) for key, v in b.items()}
    b['mask'] = (np.arange(local_batch) < k).astype(np.float32)
    template = b
    produced += 1
    yield b
  if template is None:  # this process holds no example: shape the padding from the op's output
    img = op(tf.zeros_like(split.images[0]) if split.images is not None else tf.zeros([8, 8, 3], tf.uint8),
             tf.constant([0, 0], tf.int64)).numpy()
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
