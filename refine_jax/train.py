"""Training and evaluation: the loop over phases, the jitted steps, the paper's diagnostics.

This is the one room that knows phases, models and data together. Every quantity that changes over the run
(phase, learning rate, mixing strength and probability, host augmentation probability, random keys) is
recomputed from the global step, so restoring the step and parameters restores the run.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from refine_jax import checkpoint as ckpt_lib
from refine_jax import config as config_lib
from refine_jax import export as export_lib
from refine_jax import metrics as metrics_lib
from refine_jax import models
from refine_jax import schedules
from refine_jax.augment import mixing
from refine_jax.config import ConfigError, Phase
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline, sources

CONFIG_JSON = 'config.json'
_EVAL_CACHE_BYTES = 1 << 30  # host memory for eval/diagnostic batches reused across evals


class Diverged(RuntimeError):
  """A non-finite loss; the last good checkpoint is left as it was."""


class Preempted(RuntimeError):
  """SIGTERM/SIGINT: a checkpoint was saved; re-running the same command resumes."""


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


# --------------------------------------------------------------------------- building blocks


def make_mesh(config) -> Mesh:
  """A (data, model) mesh over all devices: `mesh_model` devices on the model axis, the rest on data."""
  n, model = jax.device_count(), int(config.mesh_model)
  auto = jax.sharding.AxisType.Auto
  return jax.make_mesh((n // model, model), ('data', 'model'), axis_types=(auto, auto), devices=jax.devices())


def make_optimizer(config, lr_fn: schedules.Schedule) -> optax.GradientTransformation:
  """SGD + momentum with L2 weight decay added to the gradient (PyTorch's `weight_decay`, as the paper)."""
  o = config.optimizer
  parts = []
  if config.max_grad_norm:
    parts.append(optax.clip_by_global_norm(config.max_grad_norm))
  parts += [optax.add_decayed_weights(o.weight_decay),
            optax.sgd(lr_fn, momentum=o.momentum or None, nesterov=o.nesterov)]
  return optax.chain(*parts)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32)), axis=-1)


def one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return y * (1.0 - smoothing) + smoothing / num_classes if smoothing else y


def normalize(images: jax.Array, mean, std, dtype) -> jax.Array:
  """uint8 images (host) → normalised float on device."""
  x = images.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  return x.astype(dtype)


def mix_spec(phase_cfg) -> mixing.MixSpec:
  m = phase_cfg.mix
  return mixing.MixSpec(kind=m.kind, per_example=bool(m.per_example), layers=tuple(int(l) for l in m.layers))


@struct.dataclass
class Env:
  """What the jitted steps close over (static)."""
  model: Any = struct.field(pytree_node=False)
  tx: Any = struct.field(pytree_node=False)
  mesh: Any = struct.field(pytree_node=False)
  num_classes: int = struct.field(pytree_node=False)
  mean: tuple = struct.field(pytree_node=False)
  std: tuple = struct.field(pytree_node=False)
  dtype: Any = struct.field(pytree_node=False)
  smoothing: float = struct.field(pytree_node=False)
  seed: int = struct.field(pytree_node=False)
  gamma_fn: Callable = struct.field(pytree_node=False)
  prob_fn: Callable = struct.field(pytree_node=False)


def init_state(env: Env, image_shape: tuple[int, ...], seed: int) -> TrainState:
  x = jnp.zeros((2,) + tuple(image_shape), env.dtype)
  variables = env.model.init({'params': jax.random.PRNGKey(seed), 'dropout': jax.random.PRNGKey(1),
                              'shake': jax.random.PRNGKey(2)}, x, train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=env.tx.init(params))


def _mixed_batch(env: Env, spec: mixing.MixSpec, key, step, batch):
  x = normalize(batch['image'], env.mean, env.std, env.dtype)
  y = one_hot(batch['label'], env.num_classes, env.smoothing)
  m = mixing.draw(key, spec, env.gamma_fn(step), env.prob_fn(step), x.shape[0], x.shape[1:3], env.mesh)
  return m.inputs(x), m.targets(y), m.hook()


def train_step(env: Env, spec: mixing.MixSpec, state: TrainState, batch: dict):
  """One SGD step on a global batch; mixing keyed by fold_in(seed, step)."""
  key = jax.random.fold_in(jax.random.PRNGKey(env.seed), state.step)
  k_mix, k_drop, k_shake = jax.random.split(key, 3)
  x, y, hook = _mixed_batch(env, spec, k_mix, state.step, batch)

  def loss_fn(params):
    logits, updates = env.model.apply({'params': params, 'batch_stats': state.batch_stats}, x, train=True,
                                      hook=hook, mutable=['batch_stats'],
                                      rngs={'dropout': k_drop, 'shake': k_shake})
    return soft_cross_entropy(logits, y).mean(), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  upd, opt_state = env.tx.update(grads, state.opt_state, state.params)
  new = TrainState(step=state.step + 1, params=optax.apply_updates(state.params, upd),
                   batch_stats=updates.get('batch_stats', state.batch_stats), opt_state=opt_state)
  return new, loss


def eval_sums(env: Env, spec: Optional[mixing.MixSpec], state: TrainState, batch: dict, key):
  """Masked sums of loss / top-1 / top-5 over a padded batch (eval-mode model).

  With `spec`, the batch is mixed first (the R̂aug diagnostic under the current phase's mixing, fixed key).
  """
  if spec is None:
    x = normalize(batch['image'], env.mean, env.std, env.dtype)
    y, hook = one_hot(batch['label'], env.num_classes, 0.0), None
  else:
    # Mixing strength of the last trained step: at a phase's final eval, state.step already lies in the next phase.
    x, y, hook = _mixed_batch(env, spec, key, state.step - 1, batch)
  logits = env.model.apply({'params': state.params, 'batch_stats': state.batch_stats}, x, train=False, hook=hook)
  mask = batch['mask']
  loss = soft_cross_entropy(logits, y)
  k = min(5, env.num_classes)
  top5 = jax.lax.top_k(logits, k)[1]
  label = batch['label'][:, None]
  return {'loss': jnp.sum(loss * mask), 'top1': jnp.sum((top5[:, :1] == label).any(-1) * mask),
          'top5': jnp.sum((top5 == label).any(-1) * mask), 'count': jnp.sum(mask)}


# --------------------------------------------------------------------------- the run


class _Signals:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

  def __init__(self):
    self.received: Optional[int] = None
    self._old = {}

  def __enter__(self):
    for s in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[s] = signal.signal(s, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    self.received = signum

  def agreed(self, sync_point: bool) -> int:
    """The signal to act on now, the same on every process: one process alone acts at once; several agree
    at sync points (log steps, evals, checkpoints), since a signal may reach only one host."""
    if jax.process_count() == 1:
      return self.received or 0
    if not sync_point:
      return 0
    from jax.experimental import multihost_utils
    return int(np.max(multihost_utils.process_allgather(np.int32(self.received or 0))))

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(config, workdir: str) -> None:
  """Refuses a workdir holding a run with another config (unless allow_config_change); writes nothing."""
  old = None if config.allow_config_change else metrics_lib.read_json(os.path.join(workdir, CONFIG_JSON))
  if old is None:
    return
  new = config_to_dict(config)
  ignore = {'allow_config_change'}
  d = [x for x in config_lib.diff(old, new) if x[0] not in ignore]
  if d:
    lines = '\n'.join(f'  {k}: {a!r} (in workdir) -> {b!r} (now)' for k, a, b in d)
    raise ConfigError('allow_config_change', f'workdir {workdir} holds a run with a different config:\n{lines}\n'
                      'Use another --workdir, or pass --config.allow_config_change=True to continue anyway.')


def _log_devices(mesh: Mesh) -> None:
  logging.info('process %d of %d; %d local / %d global devices: %s; mesh %s', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(),
               [str(d) for d in jax.local_devices()], dict(mesh.shape))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes, or re-reports) the run in `workdir`; returns summary.json's content."""
  config_lib.validate(config, num_devices=jax.device_count(), process_count=jax.process_count())
  check_workdir(config, workdir)

  pidx, pcount = jax.process_index(), jax.process_count()
  train_split = sources.load(config, config.train_split, train=True, process_index=pidx, process_count=pcount)
  eval_split = sources.load(config, config.eval_split, train=False, process_index=pidx, process_count=pcount)
  spe = pipeline.steps_per_epoch(train_split, config.batch_size)
  if spe < 1:
    raise ConfigError('batch_size', f'{config.batch_size} is larger than the training split '
                      f'({train_split.num_examples_global} examples); allowed: at most that many')
  phases = config_lib.phase_table(config, spe)
  total = phases[-1].end
  # Build every op once now: a bad op argument fails here, before any compute or write.
  for p in phases:
    ops_lib.validate_spec(p.cfg.pp, f'phases.{p.name}.pp')

  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  if metrics_lib.is_writer():
    metrics_lib.write_json_atomic(os.path.join(workdir, CONFIG_JSON), config_to_dict(config))

  mesh = make_mesh(config)
  _log_devices(mesh)
  repl = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P('data'))
  dtype = jnp.bfloat16 if config.dtype == 'bfloat16' else jnp.float32
  model = models.get_model(config.model, train_split.num_classes, dtype=dtype, **dict(config.model_kwargs))
  lr_fn = schedules.learning_rate(phases, spe)
  env = Env(model=model, tx=make_optimizer(config, lr_fn), mesh=mesh, num_classes=train_split.num_classes,
            mean=train_split.mean, std=train_split.std, dtype=dtype, smoothing=float(config.label_smoothing),
            seed=int(config.seed), gamma_fn=schedules.mix_strength(phases, spe),
            prob_fn=schedules.mix_prob(phases, spe))
  aug_prob_fn = schedules.aug_prob(phases, spe)

  image_shape = _image_shape(config, train_split, phases[0])
  state = jax.jit(functools.partial(init_state, env, image_shape), static_argnums=0,
                  out_shardings=repl)(int(config.seed))
  ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, 'checkpoints'), config.keep_checkpoints,
                               keep_steps=[p.end for p in phases])
  state = _restore(config, ckpts, state, workdir, phases, spe)
  step = int(state.step)
  writer = metrics_lib.Writer(workdir)
  metrics_path = os.path.join(workdir, metrics_lib.METRICS)
  if metrics_lib.is_writer():
    metrics_lib.truncate_after(metrics_path, step)

  eval_at = set(config_lib.eval_steps(config, phases, spe))
  save_at = set(config_lib.checkpoint_steps(config, phases, spe))
  # The R̂ diagnostics use whole eval batches only: a padded row could become a real example's mixing partner.
  diag_count = max(min(config.diag_examples, train_split.num_examples_global) // config.eval_batch_size,
                   1) * config.eval_batch_size
  eval_op = ops_lib.build(config.pp_eval, 1.0, 'pp_eval')
  # Which rows of each global batch this process feeds (make_array_from_process_local_data's order).
  train_rows = pipeline.process_rows(data_sharding, config.batch_size)
  eval_rows = pipeline.process_rows(data_sharding, config.eval_batch_size)
  eval_fn = jax.jit(functools.partial(eval_sums, env, None), out_shardings=repl)

  # The eval and diagnostic inputs are the same at every eval (fixed examples and seeds): keep their host
  # batches while they are small, instead of re-running the pipeline (and re-tracing AutoAugment) each time.
  host_cache: dict[tuple, list] = {}
  cache_budget = [_EVAL_CACHE_BYTES]

  def host_batches(key: tuple, split, op_fn, count=None):
    if key in host_cache:
      return host_cache[key]
    batches = pipeline.eval_batches(split, op_fn(), batch=config.eval_batch_size, rows=eval_rows, count=count,
                                    aug_seed=config.seed)
    size = (pipeline.num_eval_batches(split, config.eval_batch_size, count) * len(eval_rows)
            * int(np.prod(image_shape)))
    if size > cache_budget[0]:
      return batches
    cache_budget[0] -= size
    host_cache[key] = list(batches)
    return host_cache[key]

  def evaluate(state, phase: Phase, step: int, aug_fn) -> dict:
    def run(fn, batches, key=None):
      # The per-batch sums come back in one transfer and are added on the host in float64, rather than by a
      # small device program per batch.
      sums = [fn(state, pipeline.to_global(b, data_sharding), None if key is None else jax.random.fold_in(key, i))
              for i, b in enumerate(batches)]
      sums = jax.device_get(sums)
      return {k: float(np.sum([s[k] for s in sums], dtype=np.float64)) for k in sums[0]}
    test = run(eval_fn, host_batches(('test',), eval_split, lambda: eval_op))
    clean = run(eval_fn, host_batches(('clean',), train_split, lambda: eval_op, diag_count))
    prob = float(aug_prob_fn(step - 1))
    aug_batches = host_batches(('aug', phase.name, prob), train_split,
                               lambda: ops_lib.build(phase.cfg.pp, prob, f'phases.{phase.name}.pp'),
                               diag_count)
    aug = run(aug_fn, aug_batches, jax.random.fold_in(jax.random.PRNGKey(config.seed), -1 % (1 << 31)))
    return {'step': step, 'epoch': round(step / spe, 4), 'phase': phase.name, 'lr': float(lr_fn(step - 1)),
            'test_top1': test['top1'] / test['count'], 'test_top5': test['top5'] / test['count'],
            'test_loss': test['loss'] / test['count'], 'test_count': int(test['count']),
            'train_clean_loss': clean['loss'] / clean['count'], 'train_aug_loss': aug['loss'] / aug['count'],
            'mix_gamma': float(env.gamma_fn(step - 1)), 'aug_prob': float(aug_prob_fn(step - 1))}

  # A loss can stay finite for steps after the weights broke: never save a non-finite state.
  all_finite = jax.jit(lambda s: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(
      (s.params, s.batch_stats, s.opt_state)) if jnp.issubdtype(x.dtype, jnp.inexact)])))

  def save(state, step: int) -> None:
    phase = config_lib.phase_at(phases, step - 1) if step else phases[0]
    if not bool(all_finite(state)):
      raise Diverged(f'non-finite parameters or statistics after step {step} (phase {phase.name!r}); not saved, '
                     f'so the last good checkpoint (step {max(ckpts.steps(), default=None)}) is intact. Lower the '
                     'learning rate or check the data.')
    epoch, offset = divmod(step, spe)
    ckpts.save(step, state, {'step': step, 'phase': phase.name, 'epoch': epoch, 'batch_in_epoch': offset,
                             'seed': int(config.seed), 'total_steps': total})

  t_start, imgs_seen = time.time(), 0
  try:
    with _Signals() as sig:
      for phase in phases:
        if step >= phase.end:
          continue
        logging.info('phase %r: steps %d..%d (epochs %.2f..%.2f), pp=%r, mix=%s', phase.name, phase.start,
                     phase.end, phase.start / spe, phase.end / spe, phase.cfg.pp, phase.cfg.mix.kind)
        spec = mix_spec(phase.cfg)
        step_fn = jax.jit(functools.partial(train_step, env, spec), donate_argnums=0)
        # R̂aug estimates the expected loss under the phase's mixing: a λ per example (same marginal as one
        # per batch) and a key per diagnostic batch average over many draws instead of resting on one.
        aug_fn = jax.jit(functools.partial(eval_sums, env, dataclasses.replace(spec, per_example=True)),
                         out_shardings=repl)
        pp_cache: dict[float, ops_lib.Pipeline] = {}

        def pp_for_epoch(e: int, phase=phase) -> ops_lib.Pipeline:
          prob = float(aug_prob_fn(max(phase.start, e * spe)))
          if prob not in pp_cache:
            pp_cache[prob] = ops_lib.build(phase.cfg.pp, prob, f'phases.{phase.name}.pp')
          return pp_cache[prob]

        batches = pipeline.train_batches(train_split, pp_for_epoch, batch=config.batch_size, rows=train_rows,
                                         steps_per_epoch=spe, seed=config.seed, start_step=step)
        pending: list[tuple[int, jax.Array]] = []
        t_last, step_last = time.time(), step
        while step < phase.end:
          batch = pipeline.to_global(next(batches), data_sharding)
          with jax.transfer_guard('disallow'):  # the step must find everything on device already
            state, loss = step_fn(state, batch)
          pending.append((step, loss))
          step += 1
          imgs_seen += config.batch_size
          boundary = step in eval_at or step in save_at or step == phase.end
          # All processes decide to stop at the same step (a signal may reach only one host).
          stop = sig.agreed(step % config.log_every_steps == 0 or boundary)
          if step % config.log_every_steps == 0 or boundary or stop:
            _check_finite(pending, phase)
            last_loss = float(pending[-1][1])
            pending = []
            if step % config.log_every_steps == 0:
              dt = time.time() - t_last
              ips = (step - step_last) * config.batch_size / max(dt, 1e-9)
              eta = (total - step) * config.batch_size / max(ips, 1e-9)
              logging.info('step %d/%d  epoch %.2f  phase %s  loss %.4f  lr %.5g  %.0f images/s  ETA %s', step,
                           total, step / spe, phase.name, last_loss, float(lr_fn(step - 1)), ips, _hms(eta))
              writer.scalars(step, {'train/loss': last_loss, 'train/lr': float(lr_fn(step - 1)),
                                    'train/images_per_s': ips})
              t_last, step_last = time.time(), step
          if step in eval_at:
            row = evaluate(state, phase, step, aug_fn)
            writer.eval_row(row)
            logging.info('eval step %d (%s): test_top1 %.4f test_loss %.4f train_clean_loss %.4f '
                         'train_aug_loss %.4f', step, phase.name, row['test_top1'], row['test_loss'],
                         row['train_clean_loss'], row['train_aug_loss'])
          if step in save_at:
            save(state, step)
          if stop:
            if step not in save_at:  # else saved just above; Orbax refuses a second save of a step
              save(state, step)
            ckpts.wait()
            raise Preempted(f'received signal {stop} at step {step} (phase {phase.name!r}); saved a '
                            f'checkpoint. Re-run the same command to resume from step {step}.')
  finally:
    ckpts.close()
    writer.close()

  rows = metrics_lib.read_jsonl(metrics_path) if metrics_lib.is_writer() else []
  summary = metrics_lib.summarize(rows, [p.name for p in phases])
  summary['total_steps'] = total
  summary['steps_per_epoch'] = spe
  if metrics_lib.is_writer():
    metrics_lib.write_json_atomic(os.path.join(workdir, metrics_lib.SUMMARY), summary)
  if imgs_seen:
    logging.info('trained %d images in %.1fs', imgs_seen, time.time() - t_start)
  return summary


def _check_finite(pending: list[tuple[int, jax.Array]], phase: Phase) -> None:
  losses = np.asarray(jax.device_get([l for _, l in pending]), np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    s = pending[bad[0]][0]
    raise Diverged(f'non-finite loss {losses[bad[0]]} at step {s} (phase {phase.name!r}); stopped without '
                   'saving, so the last good checkpoint is intact. Lower the learning rate or check the data.')


def _hms(seconds: float) -> str:
  s = int(seconds)
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def _image_shape(config, split: sources.Split, phase: Phase) -> tuple[int, ...]:
  """The shape the phase's host ops produce (runs them once on a real example)."""
  import tensorflow as tf
  op = ops_lib.build(phase.cfg.pp, 1.0, f'phases.{phase.name}.pp')
  if split.images is not None:
    img = split.images[0]
  else:
    img = next(iter(split.stream(0).take(1)))['image']
  return tuple(op(tf.convert_to_tensor(img), tf.constant([0, 0], tf.int64)).shape)


def _restore(config, ckpts: ckpt_lib.Checkpoints, state: TrainState, workdir: str, phases, spe) -> TrainState:
  """Resume order: this workdir's checkpoint, then `init_from` (parameters only; a run's workdir or a torchvision
  file), then scratch."""
  got = ckpts.restore_latest(ckpt_lib.abstract(state))
  if got is not None:
    restored, meta = got
    logging.info('resumed %s at step %d (phase %s, epoch %d + %d batches)', workdir, meta['step'], meta['phase'],
                 meta['epoch'], meta['batch_in_epoch'])
    return restored
  if config.init_from:
    root = config.init_from
    if export_lib.is_torchvision_file(root):  # a torchvision ResNet-50/101 state_dict (.pt/.pth/.safetensors)
      try:
        export_lib.check_model(config.model)
        got = export_lib.load_torchvision(root, {'params': state.params, 'batch_stats': state.batch_stats})
      except export_lib.ExportError as e:
        raise ConfigError('init_from', str(e)) from None
      repl = jax.tree.leaves(state.params)[0].sharding
      logging.info('initialised parameters and BN statistics from the torchvision file %s; optimizer and step '
                   'start fresh', root)
      return state.replace(params=jax.device_put(got['params'], repl),
                           batch_stats=jax.device_put(got['batch_stats'], repl))
    ck_dir = os.path.join(root, 'checkpoints') if epath.Path(root, 'checkpoints').is_dir() else root
    src = ckpt_lib.Checkpoints(ck_dir, read_only=True)
    try:
      got = src.restore_latest_raw()
    finally:
      src.close()
    if got is None:
      raise ConfigError('init_from', f'no readable checkpoint under {root!r}; allowed: a workdir or its '
                        'checkpoints directory holding at least one checkpoint')
    other, meta = got
    # Parameters and BN statistics only: the optimizer (and its state's shape) belongs to this run.
    params, stats = other['params'], other.get('batch_stats', {})
    want = jax.tree.map(lambda x: (x.shape, x.dtype), (state.params, state.batch_stats))
    have = jax.tree.map(lambda x: (x.shape, x.dtype), (params, stats))
    if jax.tree.structure(want) != jax.tree.structure(have) or jax.tree.leaves(want) != jax.tree.leaves(have):
      raise ConfigError('init_from', f'the checkpoint under {root!r} does not fit model {config.model!r} '
                        '(parameter names or shapes differ)')
    repl = jax.tree.leaves(state.params)[0].sharding
    logging.info('initialised parameters from %s (step %d, phase %s); optimizer and step start fresh', root,
                 meta['step'], meta['phase'])
    return state.replace(params=jax.device_put(params, repl), batch_stats=jax.device_put(stats, repl))
  return state
