"""Host-side data. TensorFlow (tf.data, TFDS, the host ops) is imported only by what needs it, through
`tensorflow()`: a run on in-memory data without host ops (the `synthetic` dataset) never loads it."""
import functools


@functools.cache
def tensorflow():
  """The `tensorflow` module, imported on first use with every accelerator hidden from it: the accelerators
  belong to JAX, and TensorFlow would otherwise take their memory when it first runs an op."""
  from refine_jax import runtime_env
  with runtime_env.quiet_native_import():
    import tensorflow as tf
  for kind in ('GPU', 'TPU'):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):  # already initialised, or no such device type
      pass
  return tf
