"""Host-side data: TensorFlow lives here and is kept off every accelerator."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # noqa: E402

# TensorFlow must never take accelerator memory: the accelerators belong to JAX.
for _kind in ('GPU', 'TPU'):
  try:
    tf.config.set_visible_devices([], _kind)
  except (RuntimeError, ValueError):  # already initialised, or no such device type
    pass

# One thread per op: tf.data already runs examples and batches in parallel, one per core. An op that also
# splits its own work over the cores (the resize, the reverse of a flip) hands pieces to threads busy with other
# examples and waits for them: on 2 cores the JPEG pipeline spent a third of its CPU time in those hand-offs
# (bench/RESULTS.md, ImageNet host pipeline, 2026-12-05).
try:
  tf.config.threading.set_intra_op_parallelism_threads(1)
except RuntimeError:  # already initialised (TensorFlow ran before this package was imported): left as it is
  pass
