"""Host-side data. TensorFlow (tf.data, TFDS, the host ops) is imported only by what needs it, through
`tensorflow()`: a run on in-memory data without host ops (the `synthetic` dataset) never loads it."""
import functools


@functools.cache
def tensorflow():
  """The `tensorflow` module, imported on first use with every accelerator hidden from it (the accelerators
  belong to JAX, and TensorFlow would otherwise take their memory when it first runs an op), and one thread per
  op: tf.data already runs examples and batches in parallel, one per core, and an op that also splits its own
  work over the cores (the resize, the reverse of a flip) hands pieces to threads busy with other examples and
  waits for them: on 2 cores the JPEG pipeline spent a third of its CPU time in those hand-offs (bench/RESULTS.md,
  ImageNet host pipeline)."""
  from refine_jax import runtime_env
  with runtime_env.quiet_native_import():
    import tensorflow as tf
  for kind in ('GPU', 'TPU'):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):  # already initialised, or no such device type
      pass
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
  except RuntimeError:  # already initialised (TensorFlow ran before this package imported it): left as it is
    pass
  return tf
