"""Orbax checkpoints of a run: train state + a JSON record of step, phase and data position.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a process killed
mid-write leaves no half checkpoint behind. A checkpoint that is nevertheless unreadable (truncated by a failing
disk, say) is skipped with a warning and the one before it is used. Every process takes part in saves.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Any, Optional, Sequence

import jax
import orbax.checkpoint as ocp
from etils import epath

from absl import logging
from orbax.checkpoint import checkpoint_managers as pp

from refine_jax import metrics as metrics_lib


class Checkpoints:
  """Saves and restores {'state': TrainState, 'meta': dict} under `directory`."""

  def __init__(self, directory: str, max_to_keep: int = 3, *, keep_steps: Sequence[int] = (),
               read_only: bool = False):
    """Keeps the newest `max_to_keep` checkpoints plus those at `keep_steps` (the phase boundaries, which the
    analyses of the augmented model need long after the run moved on)."""
    # Local paths absolute (Orbax wants them so); remote ones (gs://...) as given.
    self.directory = os.path.abspath(directory) if metrics_lib.is_local(directory) else directory
    self._read_only = read_only
    policy = pp.AnyPreservationPolicy([pp.LatestN(max_to_keep), pp.CustomSteps(list(keep_steps))])
    opts = ocp.CheckpointManagerOptions(create=not read_only, read_only=read_only, preservation_policy=policy,
                                        cleanup_tmp_directories=not read_only)
    self._mngr = ocp.CheckpointManager(self.directory, options=opts, item_names=('state', 'meta'))

  def steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                           meta=ocp.args.JsonRestore()))
    return out['state'], dict(out['meta'])

  def restore_latest(self, abstract_state: Any) -> Optional[tuple[Any, dict]]:
    """The newest readable checkpoint, falling back past unreadable ones with a warning; None if none.

    Unreadable ones are moved aside to `<directory>_unreadable/` (kept for inspection): the resumed run saves
    those steps again, and Orbax refuses to save over an existing step.
    """
    unreadable, got = [], None
    for step in reversed(self.steps()):
      try:
        got = self.restore(step, abstract_state)
        break
      except Exception as e:  # noqa: BLE001 - any read failure means "not a good checkpoint"
        logging.warning('Checkpoint at step %d under %s is unreadable (%s: %s); trying the previous one.',
                        step, self.directory, type(e).__name__, str(e)[:300])
        unreadable.append(step)
    if unreadable and not self._read_only and jax.process_index() == 0:
      aside = epath.Path(f'{self.directory}_unreadable')
      aside.mkdir(parents=True, exist_ok=True)
      for step in unreadable:
        dst = aside / f'{step}.{int(time.time())}'
        logging.warning('Moving the unreadable checkpoint at step %d to %s.', step, dst)
        (epath.Path(self.directory) / str(step)).rename(dst)
      self._mngr.reload()
    return got

  def restore_meta(self, step: int) -> dict:
    """The JSON record of the checkpoint at `step` alone (no arrays read)."""
    return dict(self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))['meta'])

  def restore_raw(self, step: int) -> tuple[dict, dict]:
    """The checkpoint at `step` as plain nested dicts of arrays (no target structure needed), and its record."""
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                           meta=ocp.args.JsonRestore()))
    return out['state'], dict(out['meta'])

  def restore_latest_raw(self) -> Optional[tuple[dict, dict]]:
    """The newest readable checkpoint as `restore_raw` gives it; None if none."""
    for step in reversed(self.steps()):
      try:
        return self.restore_raw(step)
      except Exception as e:  # noqa: BLE001
        logging.warning('Checkpoint at step %d under %s is unreadable (%s: %s); trying the previous one.',
                        step, self.directory, type(e).__name__, str(e)[:300])
    return None

  def close(self) -> None:
    self._mngr.wait_until_finished()
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
