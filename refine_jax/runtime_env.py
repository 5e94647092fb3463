"""The process environment the package sets before JAX starts, each variable only where the user has not set it.

`refine_jax/__init__.py` calls `apply()` first thing, so it runs before any module of the package imports JAX
(standard library only here: importing this costs nothing).

XLA:CPU's YNNPACK reduce fusions (jaxlib >= 0.11). From jaxlib 0.11 XLA:CPU hands a reduction together with the
graph feeding it to YNNPACK (`__ynn_fusion` in the optimized HLO). For a bfloat16 graph where a reduction
consumes a chain of convolutions — the global average pool after the last stage of every ResNet here, in eval
mode where BatchNorm is an affine map that fuses too — that fusion computes garbage: NaN, inf or values around
1e37. Measured with jax/jaxlib 0.11.2 and 0.12.0.1 (Python 3.12), 2026-12-05; 0.10.2 computes it correctly.
Seven lines show it:

    conv = lambda x, w, s: jax.lax.conv_general_dilated(x, w, (s, s), ((1, 1), (1, 1)),
                                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    f = lambda x, w1, w2: jnp.mean(jax.nn.relu(conv(jax.nn.relu(conv(x, w1, 2)), w2, 1)).astype(jnp.float32),
                                   (1, 2))
    # x: bf16[8, 8, 8, 32], w1: bf16[3, 3, 32, 64], w2: bf16[3, 3, 64, 64] (normal random):
    # jax.jit(f)(x, w1, w2) is not finite on XLA:CPU; f(x, w1, w2) eagerly, and float32, are.

Every bfloat16 evaluation of this project was NaN on XLA:CPU with the newest JAX (issue 22). The training step
was spared only because BatchNorm in training mode splits the graph at its batch statistics. The workaround
removes the `reduce` type from XLA:CPU's YNN fusions (`--xla_cpu_experimental_ynn_fusion_type=-reduce`; the
other types, and every other backend, are left as they are): evaluation is then finite and agrees with XLA:CPU
without any YNNPACK fusion up to bfloat16 rounding (tests/test_runtime_env.py holds the reproducer).
XLA reads XLA_FLAGS when its first backend starts, so the flag takes effect only if no JAX computation ran in
the process before `refine_jax` was imported; `ynn_workaround()` says whether it is in force, and the trainer
warns when a bfloat16 run on the CPU lacks it.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from importlib import metadata
from typing import Iterator, Optional

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
YNN_WORKAROUND = f'{YNN_FLAG}=-reduce'
_YNN_FIRST_BAD_JAXLIB = (0, 11)  # 0.10.2 computes the reproducer correctly; 0.11.2 and 0.12.0.1 do not

_state = {'ynn': None, 'quiet': False}  # set by apply(): the YNN workaround's state, and whether to filter


def _version(package: str) -> Optional[tuple[int, ...]]:
  try:
    v = metadata.version(package)
  except metadata.PackageNotFoundError:
    return None
  return tuple(int(p) for p in v.split('+')[0].split('.')[:2] if p.isdigit())


def _backends_started() -> bool:
  """Whether a JAX backend already exists in this process (XLA_FLAGS changed now would be ignored)."""
  bridge = sys.modules.get('jax._src.xla_bridge')
  return bool(bridge is not None and getattr(bridge, 'backends_are_initialized', lambda: False)())


def _apply_ynn(environ) -> str:
  flags = environ.get('XLA_FLAGS', '')
  jaxlib = _version('jaxlib')
  if jaxlib is None or jaxlib < _YNN_FIRST_BAD_JAXLIB:
    return 'not needed'
  if YNN_FLAG in flags:
    return 'set by the user' if YNN_WORKAROUND in flags.split() else 'overridden by the user\'s XLA_FLAGS'
  if _backends_started():
    return 'missing: a JAX backend started before refine_jax was imported'
  environ['XLA_FLAGS'] = f'{flags} {YNN_WORKAROUND}'.strip()
  return 'in force'


# Quiet by default, where the user has not set the variable: TensorFlow's C++ INFO and WARNING lines off.
QUIET_DEFAULTS = {'TF_CPP_MIN_LOG_LEVEL': '2'}
# Lines TensorFlow's native code writes to stderr while it is imported, before any log level applies (TensorFlow
# issue #100442): dropped by `quiet_native_import` unless the user set TF_CPP_MIN_LOG_LEVEL.
IMPORT_NOISE = re.compile(r'All log messages before absl::InitializeLog\(\) is called are written to STDERR'
                          r'|oneDNN custom operations are on')


def apply(environ=None) -> None:
  """Sets the package's defaults in `environ` (default: os.environ) where the user has not set them."""
  environ = os.environ if environ is None else environ
  _state['ynn'] = _apply_ynn(environ)
  _state['quiet'] = 'TF_CPP_MIN_LOG_LEVEL' not in environ
  for k, v in QUIET_DEFAULTS.items():
    environ.setdefault(k, v)


@contextlib.contextmanager
def quiet_native_import() -> Iterator[None]:
  """Around an import of TensorFlow: the native stderr (file descriptor 2) goes to a file, and what is not known
  import noise (`IMPORT_NOISE`) is written back to stderr afterwards, so nothing else is lost. Does nothing where
  the user set TF_CPP_MIN_LOG_LEVEL (they asked for TensorFlow's own logging)."""
  if not _state.get('quiet'):
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as f:
    os.dup2(f.fileno(), 2)
    try:
      yield
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      f.seek(0)
      kept = [l for l in f.read().decode(errors='replace').splitlines(keepends=True) if not IMPORT_NOISE.search(l)]
      if kept:
        sys.stderr.write(''.join(kept))
        sys.stderr.flush()


def ynn_workaround() -> str:
  """'in force', 'not needed', 'set by the user', or why it is missing ('missing: ...' / 'overridden ...')."""
  return _state['ynn'] or 'not applied'
