"""Orbax checkpoints of a run: train state, a JSON record of step, phase and data position, and a checksum.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a process killed
mid-write leaves no half checkpoint behind. Saves are asynchronous: `save` returns once the state is copied to
the host (and its checksum taken from that same state), the write and the rename finish in a background thread
while training goes on; the next `save`, `wait` and `close` wait for it. A checkpoint that is nevertheless unreadable
(truncated by a failing disk, its metadata file missing or damaged, say) or fails its integrity check (the SHA-256
of the state's bytes, saved as the JSON item 'integrity' beside the record, and finiteness) is set aside with a
warning and the one before it is used; one without an integrity record (saved before checksums were) is used with
a warning that its bytes were not verified. A checkpoint that does not fit the target is not damaged: when its
metadata reads (every tensor's name, shape and dtype), differs from the target's (another model), and the
checkpoint restores as that metadata describes, intact, restoring raises `Mismatch` and nothing is moved. Every
process takes part in saves.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from typing import Any, Optional, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from orbax.checkpoint import checkpoint_managers as pp

from refine_jax import paths

DIGEST = 'state_sha256'  # the integrity item's key for the checksum of the state
ASYNC_TIMEOUT_S = 1800  # how long the processes wait for each other to finish an asynchronous save


class Mismatch(ValueError):
  """A checkpoint whose tensors (names, shapes, dtypes) differ from the target's; `path` is the first one."""

  def __init__(self, step: int, path: str, have, want):
    super().__init__(f'the checkpoint at step {step} does not fit: tensor {path} is {have} in the checkpoint, '
                     f'{want} now')
    self.step, self.path, self.have, self.want = step, path, have, want


class Corrupt(ValueError):
  """A checkpoint that restores but whose bytes are not those it was saved with, or hold NaN/inf."""


class Unreadable(ValueError):
  """A checkpoint whose metadata Orbax cannot read whole (state/_METADATA missing or damaged, say)."""


class Checkpoints:
  """Saves and restores {'state': TrainState, 'meta': dict, 'integrity': {DIGEST: str}} under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 3, *, keep_steps: Sequence[int] = (),
               read_only: bool = False):
    """Keeps the newest `max_to_keep` checkpoints plus those at `keep_steps` (the phase boundaries, which the
    analyses of the augmented model need long after the run moved on)."""
    # Local paths absolute (Orbax wants them so); remote ones (gs://...) as given.
    self.directory = paths.absolute(directory)
    self._read_only = read_only
    policy = pp.AnyPreservationPolicy([pp.LatestN(max_to_keep), pp.CustomSteps(list(keep_steps))])
    opts = ocp.CheckpointManagerOptions(create=not read_only, read_only=read_only, preservation_policy=policy,
                                        cleanup_tmp_directories=not read_only, enable_async_checkpointing=True,
                                        async_options=ocp.AsyncOptions(timeout_secs=ASYNC_TIMEOUT_S))
    handlers = {'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler(),
                'integrity': ocp.JsonCheckpointHandler()}
    self._mngr = ocp.CheckpointManager(self.directory, options=opts, item_handlers=handlers)

  def steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves `state` with `meta` and the checksum of the state's bytes (computed now, on the host, from this
    state: the loop may donate its buffers to the next step as soon as this returns). Waits for the previous
    save first; the write of this one goes on in the background (`wait`)."""
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta),
                                                  integrity=ocp.args.JsonSave({DIGEST: digest(state)})), force=True)

  def wait(self) -> None:
    """Until the save in flight (if any) has finished and been renamed into place; raises if it failed."""
    self._mngr.wait_until_finished()

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                           meta=ocp.args.JsonRestore()))
    return out['state'], dict(out['meta'])

  def check_fits(self, step: int, abstract_state: Any) -> None:
    """Raises Mismatch when checkpoint `step` holds another model: its metadata reads, its tensors (names, shapes,
    dtypes) differ from the target's, and it restores as its metadata describes and passes the integrity check
    (so the difference is not damage). Metadata that cannot be read whole raises Unreadable; a checkpoint that
    does not restore as its metadata says raises Corrupt or Orbax's error: all three mean a damaged checkpoint."""
    tree = self._mngr.item_metadata(step)['state']
    if tree is None:  # Orbax's answer when state/_METADATA is missing or unreadable
      raise Unreadable(f'checkpoint {step}: Orbax reads no metadata of its state (state/_METADATA missing or '
                       'damaged)')
    have, want = _shapes(tree), _shapes(abstract_state)
    differ = [n for n in [*want, *(n for n in have if n not in want)] if have.get(n, 'absent') != want.get(n, 'absent')]
    if not differ:
      return
    self._restore_as_saved(step, tree, abstract_state)
    name = differ[0]
    raise Mismatch(step, name, _describe(have.get(name, 'absent')), _describe(want.get(name, 'absent')))

  def _restore_as_saved(self, step: int, tree: Any, abstract_state: Any) -> None:
    """Restores checkpoint `step` as its metadata `tree` describes (placed like the target's first tensor) and
    verifies it (`_verify`): raises unless it is an intact checkpoint of that structure."""
    first = jax.tree.leaves(abstract_state)[0]
    sharding = getattr(first, 'sharding', None) or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=sharding), tree)
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    self._verify(step, out['state'])

  def restore_verified(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """`restore`, then the checksum (when the checkpoint has one) and finiteness checks; raises Corrupt."""
    state, meta = self.restore(step, abstract_state)
    self._verify(step, state)
    return state, meta

  def _verify(self, step: int, state: Any) -> None:
    """Raises Corrupt when the restored state's bytes differ from the checksum saved with checkpoint `step`, or
    hold NaN/inf; a checkpoint without a checksum is checked for NaN/inf only, with a warning."""
    host = _host_leaves(state)
    saved = self._saved_digest(step)
    if saved is None:
      logging.warning('checkpoint %d has no integrity record; its bytes were not verified', step)
    elif _digest_of(host) != saved:
      raise Corrupt(f'checkpoint {step}: the state\'s bytes do not match the checksum saved with it '
                    f'({DIGEST} {saved[:12]}...)')
    bad = [n for n, x in host if x.dtype.kind in 'fc' and not np.isfinite(x).all()]
    if bad:
      raise Corrupt(f'checkpoint {step}: {len(bad)} tensors hold NaN or inf, e.g. {bad[0]}')

  def restore_latest(self, abstract_state: Any) -> Optional[tuple[Any, dict]]:
    """The newest good checkpoint, falling back past unreadable or corrupt ones with a warning; None if none.

    A checkpoint that does not fit `abstract_state` (`check_fits`: it reads cleanly, and holds another model)
    raises Mismatch before anything is moved. Unreadable and corrupt ones (a missing metadata file included) are
    moved aside to `<directory>_unreadable/` (kept for inspection): the resumed run saves those steps again, and
    Orbax refuses to save over an existing step.
    """
    unreadable, got = [], None
    for step in reversed(self.steps()):
      try:
        self.check_fits(step, abstract_state)
        got = self.restore_verified(step, abstract_state)
        break
      except Mismatch:
        raise
      except Corrupt as e:
        self._warn(step, 'fails its integrity check', e)
        unreadable.append(step)
      except Exception as e:  # noqa: BLE001 - any read failure means "not a good checkpoint"
        self._warn(step, 'is unreadable', e)
        unreadable.append(step)
    if unreadable and not self._read_only and jax.process_index() == 0:
      aside = epath.Path(f'{self.directory}_unreadable')
      aside.mkdir(parents=True, exist_ok=True)
      for step in unreadable:
        dst = aside / f'{step}.{int(time.time())}'
        logging.warning('Moving the unreadable or corrupt checkpoint at step %d to %s.', step, dst)
        (epath.Path(self.directory) / str(step)).rename(dst)
      self._mngr.reload()
    return got

  def _saved_digest(self, step: int) -> Optional[str]:
    """The checksum saved with checkpoint `step`; None for a checkpoint from before checksums were saved."""
    if not (epath.Path(self.directory) / str(step) / 'integrity').exists():
      return None
    got = self._mngr.restore(step, args=ocp.args.Composite(integrity=ocp.args.JsonRestore()))['integrity']
    return str(got[DIGEST])

  def _warn(self, step: int, what: str, e: Exception) -> None:
    logging.warning('Checkpoint at step %d under %s %s (%s: %s); trying the previous one.', step, self.directory,
                    what, type(e).__name__, str(e)[:300])

  def restore_meta(self, step: int) -> dict:
    """The JSON record of the checkpoint at `step` alone (no arrays read)."""
    return dict(self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta'])

  def restore_raw(self, step: int) -> tuple[dict, dict]:
    """The checkpoint at `step` as plain nested dicts of arrays (no target structure needed), and its record,
    verified like `restore_verified` (raises Corrupt)."""
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                           meta=ocp.args.JsonRestore()))
    self._verify(step, out['state'])
    return out['state'], dict(out['meta'])

  def restore_latest_raw(self) -> Optional[tuple[dict, dict]]:
    """The newest good checkpoint as `restore_raw` gives it, falling back past unreadable or corrupt ones with
    a warning (nothing is moved: the directory may be another run's); None if none."""
    for step in reversed(self.steps()):
      try:
        return self.restore_raw(step)
      except Corrupt as e:
        self._warn(step, 'fails its integrity check', e)
      except Exception as e:  # noqa: BLE001 - any read failure means "not a good checkpoint"
        self._warn(step, 'is unreadable', e)
    return None

  def close(self) -> None:
    """Waits for the save in flight and for Orbax's start-up clean-up of unfinished temporary directories.

    That clean-up runs in a background thread from the manager's creation, and orbax-checkpoint 0.12's `close()`
    does not wait for it (only `save` does, privately): a process that exits right after set-up (a SIGTERM
    then) would tear the interpreter down under it, and the thread dies with a traceback ("cannot schedule new
    futures after interpreter shutdown"). Its private waiter is called where it exists."""
    self._mngr.wait_until_finished()
    getattr(self._mngr, '_maybe_await_cleanup_tmp_directory', lambda: None)()
    self._mngr.close()

  def __enter__(self) -> 'Checkpoints':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree, the target for a restore."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, 'sharding', None)),
                      tree)


def copy_step(src_directory: str, step: int, dst_directory: str) -> str:
  """Copies the checkpoint at `step` under `src_directory` to `dst_directory/<step>` (local paths), never
  leaving a half copy: the files go to a hidden directory beside the target, renamed into place when complete.
  A complete copy already there is kept. Returns the target path."""
  src = os.path.join(os.path.abspath(src_directory), str(step))
  dst_root = os.path.abspath(dst_directory)
  dst = os.path.join(dst_root, str(step))
  if os.path.isdir(dst):
    return dst
  os.makedirs(dst_root, exist_ok=True)
  tmp = os.path.join(dst_root, f'.{step}.copying')
  shutil.rmtree(tmp, ignore_errors=True)  # a copy interrupted earlier
  shutil.copytree(src, tmp)
  os.rename(tmp, dst)
  return dst


def _path_name(path) -> str:
  """'params.conv1.kernel' for a key path of a TrainState, of a nested dict, or of Orbax's metadata tree."""
  parts = []
  for k in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return '.'.join(parts)


def _shapes(tree: Any) -> dict[str, tuple]:
  """{name: (shape, dtype)} of the tensors of a target tree or of Orbax's metadata tree."""
  return {_path_name(k): (tuple(v.shape), np.dtype(v.dtype)) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _describe(x) -> str:
  return x if isinstance(x, str) else f'{x[1]}{x[0]}'


def _host_leaves(tree: Any) -> list[tuple[str, np.ndarray]]:
  """(name, host copy) of every array, sorted by name; each from this process's first shard, which is the whole
  array for the fully replicated train state."""
  out = []
  for k, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if isinstance(x, jax.Array):
      if not x.is_fully_replicated:
        raise ValueError(f'{_path_name(k)} is not fully replicated; the checksum needs the whole array')
      x = x.addressable_data(0)
    out.append((_path_name(k), np.asarray(x)))
  return sorted(out, key=lambda t: t[0])


def _digest_of(host: list[tuple[str, np.ndarray]]) -> str:
  h = hashlib.sha256()
  for name, x in host:
    h.update(f'{name}|{x.dtype.str}|{x.shape}|'.encode())
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()


def digest(tree: Any) -> str:
  """SHA-256 of a pytree's names, dtypes, shapes and bytes, computed on the host; independent of leaf order."""
  return _digest_of(_host_leaves(tree))
