"""Where a run's state comes from, in this order: the workdir's own checkpoint, then `init_from`, then scratch.

1. The newest good checkpoint of the workdir (`Checkpoints.restore_latest`: unreadable or corrupt ones are set
   aside and the one before is used; one that reads cleanly but holds another model is refused, naming the
   config field that changed). The whole train state, the step with it: the run goes on where it stopped.
2. `init_from`: parameters and BatchNorm statistics only (optimizer and step start fresh), from another run's
   workdir (its newest good checkpoint; nothing there is moved) or a torchvision ResNet-50/101 file.
3. Scratch: the state `steps.init_state` made from the seed.
"""
from __future__ import annotations

import jax
from absl import logging

from refine_jax import checkpoint as ckpt_lib
from refine_jax import export as export_lib
from refine_jax import fields
from refine_jax import steps
from refine_jax import workdir as workdir_lib
from refine_jax.errors import ConfigError
from refine_jax.spec import Spec


def restore(spec: Spec, ckpts: ckpt_lib.Checkpoints, state: steps.TrainState, workdir: str) -> steps.TrainState:
  """The run's starting state by the resume order above; `state` is the state made from scratch."""
  try:
    got = ckpts.restore_latest(ckpt_lib.abstract(state))
  except ckpt_lib.Mismatch as e:
    raise ConfigError(_changed_field(spec, workdir), f'{e}. The workdir\'s checkpoints belong to another model; '
                      'nothing was changed. Use another --workdir, or undo the change.') from None
  if got is not None:
    restored, meta = got
    logging.info('resumed %s at step %d (phase %s, epoch %d + %d batches)', workdir, meta['step'], meta['phase'],
                 meta['epoch'], meta['batch_in_epoch'])
    return restored
  if not spec.init_from:
    return state
  root = spec.init_from
  if export_lib.is_torchvision_file(root):  # a torchvision ResNet-50/101 state_dict (.pt/.pth/.safetensors)
    params, stats = _torchvision_variables(spec, root, state)
    logging.info('initialised parameters and BN statistics from the torchvision file %s; optimizer and step '
                 'start fresh', root)
  else:
    params, stats, meta = _checkpoint_variables(spec, root, state)
    logging.info('initialised parameters from %s (step %d, phase %s); optimizer and step start fresh', root,
                 meta['step'], meta['phase'])
  repl = jax.tree.leaves(state.params)[0].sharding
  return state.replace(params=jax.device_put(params, repl), batch_stats=jax.device_put(stats, repl))


def _changed_field(spec: Spec, workdir: str) -> str:
  """The fields that differ from the workdir's config.json and change what is trained (the cause of a checkpoint
  that does not fit), model fields first; 'model' when none is recorded."""
  old = workdir_lib.read_config(workdir)
  changed = [k for k, _, _ in fields.differences(old or {}, spec.as_dict(), fields.RESUME_MAY_DIFFER)]
  changed.sort(key=lambda k: not k.startswith(('model', 'dtype')))
  return ', config.'.join(changed) if old is not None and changed else 'model'


def _torchvision_variables(spec: Spec, path: str, state: steps.TrainState) -> tuple:
  try:
    export_lib.check_model(spec.model.name)
    got = export_lib.load_torchvision(path, {'params': state.params, 'batch_stats': state.batch_stats})
  except export_lib.ExportError as e:
    raise ConfigError('init_from', str(e)) from None
  return got['params'], got['batch_stats']


def _checkpoint_variables(spec: Spec, root: str, state: steps.TrainState) -> tuple:
  """(params, batch_stats, meta) of the newest checkpoint under a workdir or checkpoints directory, checked
  against this run's model. Parameters and BN statistics only: the optimizer belongs to this run."""
  with workdir_lib.open_checkpoints(root) as src:
    got = src.restore_latest_raw()
  if got is None:
    raise ConfigError('init_from', f'no readable, intact checkpoint under {root!r}; allowed: a workdir or its '
                      'checkpoints directory holding at least one checkpoint')
  other, meta = got
  params, stats = other['params'], other.get('batch_stats', {})
  want = jax.tree.map(lambda x: (x.shape, x.dtype), (state.params, state.batch_stats))
  have = jax.tree.map(lambda x: (x.shape, x.dtype), (params, stats))
  if jax.tree.structure(want) != jax.tree.structure(have) or jax.tree.leaves(want) != jax.tree.leaves(have):
    raise ConfigError('init_from', f'the checkpoint under {root!r} does not fit model {spec.model.name!r} '
                      '(parameter names or shapes differ)')
  return params, stats, meta
