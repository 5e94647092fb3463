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
