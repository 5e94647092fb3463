"""The loop over the plan's phases: set up, train each phase, decide log / eval / save / stop in one place.

This is the one room that knows phases, models and data together. Every quantity that changes over the run
(phase, learning rate, mixing strength and probability, host augmentation probability, random keys) is a
function of the global step (`plan`, `schedules`), so restoring the step and parameters restores the run.
The jitted steps live in `steps`, the eval and diagnostics in `evaluate`.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from refine_jax import checkpoint as ckpt_lib
from refine_jax import config as config_lib
from refine_jax import evaluate
from refine_jax import export as export_lib
from refine_jax import metrics as metrics_lib
from refine_jax import plan as plan_lib
from refine_jax import registries
from refine_jax import runtime_env
from refine_jax import signals
from refine_jax import steps
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline, sources
from refine_jax.errors import ConfigError, Diverged, Preempted
from refine_jax.plan import Phase, Plan


# --------------------------------------------------------------------------- the run


class _Signals:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

  def __init__(self):
    self.received: Optional[int] = signals.received_early()  # one that came while `main` was importing
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
    return int(np.max(multihost_utils.process_allgather(np.int32(self.received or 0))))

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


# Fields that leave the trained trajectory alone: a resumed run may change them, and they are never the cause of a
# checkpoint that does not fit.
_TRAJECTORY_FREE = frozenset({'allow_config_change', 'prefetch_to_device'})


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(config, workdir: str) -> None:
  """Refuses a workdir holding a run with another config (unless allow_config_change); writes nothing."""
  path = os.path.join(workdir, metrics_lib.CONFIG)
  old = None if config.allow_config_change else metrics_lib.read_json(path)
  if old is None:
    return
  new = config_to_dict(config)
  # main resumes a fork (its config.json records forked_from, the config does not).
  ignore = _TRAJECTORY_FREE | ({'forked_from'} if 'forked_from' not in new else set())
  d = [x for x in config_lib.diff(old, new) if x[0].split('.')[0] not in ignore]
  if d:
    lines = '\n'.join(f'  {k}: {a!r} (in workdir) -> {b!r} (now)' for k, a, b in d)
    raise ConfigError('allow_config_change', f'workdir {workdir} holds a run with a different config:\n{lines}\n'
                      'Use another --workdir, or pass --config.allow_config_change=True to continue anyway.')


def _log_devices(mesh: Mesh) -> None:
  logging.info('process %d of %d; %d local / %d global devices: %s; mesh %s', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(),
               [str(d) for d in jax.local_devices()], dict(mesh.shape))


def _load_splits(config) -> tuple[sources.Split, sources.Split, int]:
  """This process's training and eval splits and the steps per epoch."""
  pidx, pcount = jax.process_index(), jax.process_count()
  train = sources.load(config, config.train_split, train=True, process_index=pidx, process_count=pcount)
  test = sources.load(config, config.eval_split, train=False, process_index=pidx, process_count=pcount)
  spe = pipeline.steps_per_epoch(train, config.batch_size)
  if spe < 1:
    raise ConfigError('batch_size', f'{config.batch_size} is larger than the training split '
                      f'({train.num_examples_global} examples); allowed: at most that many')
  logging.info('%s: %d classes, %d train / %d eval images', config.dataset, train.num_classes,
               train.num_examples_global, test.num_examples_global)
  return train, test, spe


def _check_sizes(config, plan: Plan, train: sources.Split, test: sources.Split) -> None:
  """Every phase's host ops and pp_eval on each image size of their split, and the size they give against
  `image_size`, before anything is written."""
  checks = [(train, p.host_ops(1.0), p.pp, f'phases.{p.name}.pp', config.train_split) for p in plan.phases]
  checks.append((test, plan.eval_ops(), config.pp_eval, 'pp_eval', config.eval_split))
  for args in checks:
    pipeline.check_sizes(*args)
  for args in checks:  # image_size: what every phase and the eval give the model, for every dataset
    pipeline.check_image_size(*args, config.image_size)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes, or re-reports) the run in `workdir`; returns summary.json's content."""
  # The handlers come first: a SIGTERM/SIGINT during set-up (reading data, compiling) is kept, not lost.
  with _Signals() as sig:
    run = _set_up(config, workdir)
    try:
      stop = sig.agreed(True)
      if stop:
        raise Preempted(f'received signal {stop} during set-up, before training from step {run.step}; nothing '
                        'to save. Re-run the same command to resume.')
      run.complete_phase_end()
      for phase in run.plan.phases:
        if run.step < phase.end:
          run.train_phase(phase, sig)
    finally:
      run.close()
  return run.summary()


def _set_up(config, workdir: str) -> '_Run':
  """Validation, data, plan and size checks (nothing written if any fails), then the run restored."""
  config_lib.validate(config, registries.default(), num_devices=jax.device_count(),
                      process_count=jax.process_count())
  check_workdir(config, workdir)
  _warn_unsafe_bfloat16(config)
  train, test, spe = _load_splits(config)
  plan = plan_lib.resolve(config, spe, ops_lib.build)
  _check_sizes(config, plan, train, test)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  # config.json is rewritten only once the workdir's checkpoint is known to fit this config.
  run = _Run(config, workdir, plan, train, test)
  if metrics_lib.is_writer():
    path = os.path.join(workdir, metrics_lib.CONFIG)
    record, old = config_to_dict(config), metrics_lib.read_json(path) or {}
    if 'forked_from' in old:  # a forked run stays one when `main` resumes it
      record.setdefault('forked_from', old['forked_from'])
    metrics_lib.write_json_atomic(path, record)
  return run


def _warn_unsafe_bfloat16(config) -> None:
  """bfloat16 on XLA:CPU without the YNNPACK workaround (`runtime_env`) evaluates to NaN on jaxlib >= 0.11."""
  state = runtime_env.ynn_workaround()
  if config.dtype == 'bfloat16' and jax.default_backend() == 'cpu' and state.startswith(('missing', 'overridden')):
    logging.warning('bfloat16 on the CPU: the XLA:CPU workaround %s is %s; evaluations may be NaN (the run then '
                    'stops, exit 4). See refine_jax/runtime_env.py.', runtime_env.YNN_WORKAROUND, state)


class _Run:
  """One run's state between steps: the train state and step, its checkpoints, writer and evaluator."""

  def __init__(self, config, workdir: str, plan: Plan, train: sources.Split, test: sources.Split):
    self.config, self.workdir, self.plan, self.train = config, workdir, plan, train
    mesh = steps.make_mesh(config.mesh_model)
    _log_devices(mesh)
    self.env = steps.make_env(config, plan, mesh, num_classes=train.num_classes, mean=train.mean, std=train.std)
    self.sharding = NamedSharding(mesh, P('data'))
    repl = NamedSharding(mesh, P())
    image_shape = pipeline.output_shape(train, plan.phases[0].host_ops(1.0))
    state = jax.jit(functools.partial(steps.init_state, self.env, image_shape), static_argnums=0,
                    out_shardings=repl)(plan.seed)
    self.ckpts = ckpt_lib.Checkpoints(os.path.join(workdir, 'checkpoints'), config.keep_checkpoints,
                                      keep_steps=sorted(plan.keep_steps))
    try:
      self.state = _restore(config, self.ckpts, state, workdir)
    except BaseException:
      self.ckpts.close()
      raise
    self.step = int(self.state.step)
    # The newest checkpoint known to be intact and finished (restored and verified, or saved completely), and
    # the step of a save that may still be in flight (Orbax writes asynchronously while the loop goes on).
    self.good_step = self.step if self.ckpts.steps() else None
    self.saving: Optional[int] = None
    self.writer = metrics_lib.Writer(workdir)
    if metrics_lib.is_writer():
      metrics_lib.truncate_after(os.path.join(workdir, metrics_lib.METRICS), self.step)
    self.evaluator = evaluate.Evaluator(self.env, plan, train, test, batch=config.eval_batch_size,
                                        diag_examples=config.diag_examples, image_shape=image_shape,
                                        phase_end_examples=config.phase_end_diag_examples)
    # A loss can stay finite for steps after the weights broke: never save a non-finite state.
    self._all_finite = jax.jit(steps.all_finite)
    self.pending: list[tuple[int, jax.Array]] = []  # losses not yet checked
    self.t_start, self.imgs_seen = time.time(), 0
    self.t_last, self.step_last = self.t_start, self.step
    # Seconds in the phase loops (from each phase's first compiled step), in evals and blocked in saves, and how
    # many; the logged speed leaves out evals and saves (`_log`). timing.json holds them at the end.
    self.clock = {'loop': 0.0, 'eval': 0.0, 'save': 0.0}
    self.count = {'eval': 0, 'save': 0}
    self.first_evals: dict[str, float] = {}  # each phase's first eval here (it compiles the phase's eval programs)
    self.paused = 0.0  # eval + save seconds since the last log line

  def train_phase(self, phase: Phase, sig: _Signals) -> None:
    """Trains from the current step to the phase's end (the host pipeline is rebuilt for the phase)."""
    c, spe = self.config, self.plan.steps_per_epoch
    logging.info('phase %r: steps %d..%d (epochs %.2f..%.2f), pp=%r, mix=%s', phase.name, phase.start,
                 phase.end, phase.start / spe, phase.end / spe, phase.pp, phase.mix.kind)
    step_fn = jax.jit(functools.partial(steps.train_step, self.env, phase.mix), donate_argnums=0)

    def pp_for_epoch(e: int):
      return phase.host_ops(float(self.plan.aug_prob(max(phase.start, e * spe))))
    host = pipeline.train_batches(self.train, pp_for_epoch, batch=c.batch_size,
                                  rows=pipeline.process_rows(self.sharding, c.batch_size),
                                  steps_per_epoch=spe, seed=c.seed, start_step=self.step)
    # Batches k+1.. are read and transferred by a thread while step k runs; the loop never blocks on the device
    # (losses are read at log steps only). The phase's first dispatch returns once compiled: its speed starts then.
    with pipeline.device_batches(host, self.sharding, c.prefetch_to_device) as batches:
      self.t_last, self.step_last, t_loop = time.time(), self.step, None
      try:
        while self.step < phase.end:
          batch = next(batches)
          with jax.transfer_guard('disallow'):  # the step must find everything on device already
            self.state, loss = step_fn(self.state, batch)
          self.pending.append((self.step, loss))
          self.step += 1
          self.imgs_seen += c.batch_size
          if t_loop is None:  # the phase's first step, compiled and dispatched
            self.t_last = t_loop = time.time()
            self.step_last, self.paused = self.step, 0.0
          self.on_step_end(phase, sig)
      finally:
        self.clock['loop'] += time.time() - (t_loop or time.time())

  def on_step_end(self, phase: Phase, sig: _Signals) -> None:
    """The one place that decides, after each step, whether to log, evaluate, save or stop."""
    step, ev = self.step, self.plan.events(self.step)
    # All processes decide to stop at the same step (a signal may reach only one host).
    stop = sig.agreed(ev.sync)
    if ev.check_loss or stop:
      last_loss = _check_finite(self.pending, phase, step, self._intact)
      self.pending = []
      if ev.log:
        self._log(phase, last_loss)
    if ev.eval:
      t = time.time()
      row = self.evaluator(self.state, phase, step)
      if step == phase.end and self.evaluator.phase_end_examples != 0:  # in the row, before the save
        row.update(self.evaluator.phase_end(self.state, phase, step))
      self._check_metrics(row, phase, step)
      self.writer.eval_row(row)
      self._paused('eval', t)
      self.first_evals.setdefault(phase.name, time.time() - t)
      logging.info('eval step %d (%s): test_top1 %.4f test_loss %.4f train_clean_loss %.4f '
                   'train_aug_loss %.4f (%.2fs)', step, phase.name, row['test_top1'], row['test_loss'],
                   row['train_clean_loss'], row['train_aug_loss'], time.time() - t)
    if ev.save:
      self.save()
    if stop:
      if not ev.save:  # else saved just above; Orbax refuses a second save of a step
        self.save()
      self.ckpts.wait()  # the process may exit only once the save has finished
      raise Preempted(f'received signal {stop} at step {step} (phase {phase.name!r}); saved a '
                      f'checkpoint. Re-run the same command to resume from step {step}.')

  def complete_phase_end(self) -> None:
    """Measures the phase-end diagnostics of a run restored exactly at a phase's end whose eval row there lacks
    them (a fork at its switch step: the parent trained on past it), and adds them to that row. A normal run
    writes them into the row before saving the checkpoint, so a resumed run finds them (nothing measured twice)
    or resumes before the phase end and measures them again (a run killed while measuring)."""
    ended = [p for p in self.plan.phases if p.end == self.step]
    if not ended or self.evaluator.phase_end_examples == 0:
      return
    path = os.path.join(self.workdir, metrics_lib.METRICS)
    at = [r for r in metrics_lib.read_jsonl(path) if r['step'] == self.step] if metrics_lib.is_writer() else []
    need = bool(at) and at[-1].get('phase') == ended[0].name and metrics_lib.PHASE_END_KEYS[0] not in at[-1]
    if jax.process_count() > 1:
      need = bool(multihost_utils.broadcast_one_to_all(np.int32(need)))
    if need:
      values = self.evaluator.phase_end(self.state, ended[0], self.step)
      self._check_metrics(values, ended[0], self.step)
      logging.info('phase-end diagnostics at step %d (%s): %s', self.step, ended[0].name, values)
      if metrics_lib.is_writer():
        metrics_lib.update_row(path, self.step, values)
      self.writer.scalars(self.step, {f'eval/{k}': v for k, v in values.items()})

  def _check_metrics(self, values: dict, phase: Phase, step: int) -> None:
    """A non-finite evaluation metric is divergence: raises Diverged naming it, before anything is written or
    saved (no file of the run ever holds NaN or inf)."""
    bad = [k for k, v in values.items() if isinstance(v, float) and not np.isfinite(v)]
    if not bad:
      return
    finite = bool(self._all_finite(self.state))
    where = ('the parameters are finite, so the evaluation itself produced it (numerics of the eval path, e.g. '
             'bfloat16 on a broken backend)' if finite else 'the parameters hold NaN or inf')
    also = f' (and {", ".join(bad[1:])})' if bad[1:] else ''
    raise Diverged(f'non-finite evaluation metric {bad[0]} = {values[bad[0]]}{also} at step {step} (phase '
                   f'{phase.name!r}); {where}. Stopped without writing or saving, so {self._intact()}.')

  def _log(self, phase: Phase, loss: float) -> None:
    plan, step, bs = self.plan, self.step, self.config.batch_size
    dt = time.time() - self.t_last
    # Training speed: no speed yet on a phase's first step (its compile time is left out), and the seconds of
    # evals and blocking saves in the interval left out (the ETA counts them).
    n = (step - self.step_last) * bs
    ips = n / max(dt - self.paused, 1e-9) if n else float('nan')
    eta = _hms((plan.total_steps - step) * bs * dt / n) if n else '?'
    lr = float(plan.lr(step - 1))
    logging.info('step %d/%d  epoch %.2f  phase %s  loss %.4f  lr %.5g  %.0f images/s  ETA %s', step,
                 plan.total_steps, step / plan.steps_per_epoch, phase.name, loss, lr, ips, eta)
    speed = {'train/images_per_s': ips} if ips > 0 else {}
    self.writer.scalars(step, {'train/loss': loss, 'train/lr': lr, **speed})
    self.t_last, self.step_last, self.paused = time.time(), step, 0.0

  def _paused(self, what: str, since: float) -> None:
    dt = time.time() - since
    self.clock[what] += dt
    self.count[what] += 1
    self.paused += dt

  def _intact(self) -> str:
    """The divergence message's promise, once a save in flight has finished: the checkpoint this run restored
    (verified) or saved completely last."""
    if self.saving is not None:
      try:
        self.ckpts.wait()
        self.good_step = self.saving
      except Exception as e:  # noqa: BLE001 - that save failed: the one before it stays the last good one
        logging.warning('the checkpoint save of step %d failed (%s: %s)', self.saving, type(e).__name__, e)
      self.saving = None
    if self.good_step is None:
      return 'no checkpoint was written'
    return f'the last good checkpoint (step {self.good_step}) is intact'

  def save(self) -> None:
    step, plan = self.step, self.plan
    phase = plan.phase_at(step - 1) if step else plan.phases[0]
    t = time.time()
    if not bool(self._all_finite(self.state)):
      raise Diverged(f'non-finite parameters or statistics after step {step} (phase {phase.name!r}); not saved, '
                     f'so {self._intact()}. Lower the learning rate or check the data.')
    epoch, offset = divmod(step, plan.steps_per_epoch)
    # Orbax first waits for the previous save (so it is finished: the last good one), copies the state to the
    # host and returns; the write and its atomic rename finish in the background while the loop goes on.
    self.ckpts.save(step, self.state, {'step': step, 'phase': phase.name, 'epoch': epoch, 'batch_in_epoch': offset,
                                       'seed': plan.seed, 'total_steps': plan.total_steps})
    if self.saving is not None:
      self.good_step = self.saving
    self.saving = step
    self._paused('save', t)

  def close(self) -> None:
    self.ckpts.close()
    self.writer.close()

  def summary(self) -> dict:
    """summary.json (written by process 0) from the eval rows in metrics.jsonl."""
    plan = self.plan
    rows = (metrics_lib.read_jsonl(os.path.join(self.workdir, metrics_lib.METRICS))
            if metrics_lib.is_writer() else [])
    summary = metrics_lib.summarize(rows, [p.name for p in plan.phases])
    summary['total_steps'] = plan.total_steps
    summary['steps_per_epoch'] = plan.steps_per_epoch
    if metrics_lib.is_writer():
      metrics_lib.write_json_atomic(os.path.join(self.workdir, metrics_lib.SUMMARY), summary)
    if self.imgs_seen:
      k = self.clock
      logging.info('trained %d images in %.1fs (%.1fs in the phase loops, of which evaluation %.1fs and blocking '
                   'checkpoint saves %.1fs)', self.imgs_seen, time.time() - self.t_start, k['loop'], k['eval'],
                   k['save'])
      if metrics_lib.is_writer():
        metrics_lib.write_json_atomic(os.path.join(self.workdir, metrics_lib.TIMING), self.timing())
    return summary

  def timing(self) -> dict:
    """This invocation's clock (timing.json): images trained, seconds from set-up to the end (`wall_s`), in the
    phase loops (`loop_s`, from each phase's first compiled step), of which evaluation with its diagnostics
    (`eval_s`; `first_eval_s`: each phase's first eval, which compiles its programs) and blocking checkpoint saves
    (`save_s`), their counts, and the peak device memory (None where the backend keeps no statistics: CPU)."""
    k = self.clock
    return {'images': self.imgs_seen, 'wall_s': time.time() - self.t_start, 'loop_s': k['loop'], 'eval_s': k['eval'],
            'first_eval_s': sum(self.first_evals.values()), 'evals': self.count['eval'], 'save_s': k['save'],
            'saves': self.count['save'], 'peak_bytes_in_use': _peak_bytes(),
            'device_kind': jax.devices()[0].device_kind, 'device_count': jax.device_count()}


def _check_finite(pending: list[tuple[int, jax.Array]], phase: Phase, now: int, intact: Callable[[], str]) -> float:
  """The last pending loss; raises Diverged at the first non-finite one (`intact()` names the good checkpoint)."""
  losses = np.asarray(jax.device_get([l for _, l in pending]), np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    s = pending[bad[0]][0]
    raise Diverged(f'non-finite loss {losses[bad[0]]} at step {s} (phase {phase.name!r}), detected after step '
                   f'{now}; stopped without saving, so {intact()}. Lower the learning rate or check the data.')
  return float(losses[-1])


def _peak_bytes() -> Optional[int]:
  """The largest peak memory in use among this process's devices; None where the backend keeps no statistics."""
  stats = [d.memory_stats() for d in jax.local_devices()]
  peaks = [s['peak_bytes_in_use'] for s in stats if s and 'peak_bytes_in_use' in s]
  return max(peaks) if peaks else None


def _hms(seconds: float) -> str:
  s = int(seconds)
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def _restore(config, ckpts: ckpt_lib.Checkpoints, state: steps.TrainState, workdir: str) -> steps.TrainState:
  """Resume order: this workdir's checkpoint, then `init_from` (parameters only; a run's workdir or a torchvision
  file), then scratch."""
  try:
    got = ckpts.restore_latest(ckpt_lib.abstract(state))
  except ckpt_lib.Mismatch as e:
    raise ConfigError(_changed_field(config, workdir), f'{e}. The workdir\'s checkpoints belong to another model; '
                      'nothing was changed. Use another --workdir, or undo the change.') from None
  if got is not None:
    restored, meta = got
    logging.info('resumed %s at step %d (phase %s, epoch %d + %d batches)', workdir, meta['step'], meta['phase'],
                 meta['epoch'], meta['batch_in_epoch'])
    return restored
  if not config.init_from:
    return state
  root = config.init_from
  if export_lib.is_torchvision_file(root):  # a torchvision ResNet-50/101 state_dict (.pt/.pth/.safetensors)
    params, stats = _torchvision_variables(config, root, state)
    logging.info('initialised parameters and BN statistics from the torchvision file %s; optimizer and step '
                 'start fresh', root)
  else:
    params, stats, meta = _checkpoint_variables(config, root, state)
    logging.info('initialised parameters from %s (step %d, phase %s); optimizer and step start fresh', root,
                 meta['step'], meta['phase'])
  repl = jax.tree.leaves(state.params)[0].sharding
  return state.replace(params=jax.device_put(params, repl), batch_stats=jax.device_put(stats, repl))


def _changed_field(config, workdir: str) -> str:
  """The config fields that differ from the workdir's config.json (the cause of a checkpoint that does not fit),
  model fields first; 'model' when none is recorded."""
  old = metrics_lib.read_json(os.path.join(workdir, metrics_lib.CONFIG))
  changed = [k for k, _, _ in config_lib.diff(old or {}, config_to_dict(config))
             if k.split('.')[0] not in _TRAJECTORY_FREE]
  changed.sort(key=lambda k: not k.startswith(('model', 'dtype')))
  return ', config.'.join(changed) if old is not None and changed else 'model'


def _torchvision_variables(config, path: str, state: steps.TrainState) -> tuple:
  try:
    export_lib.check_model(config.model)
    got = export_lib.load_torchvision(path, {'params': state.params, 'batch_stats': state.batch_stats})
  except export_lib.ExportError as e:
    raise ConfigError('init_from', str(e)) from None
  return got['params'], got['batch_stats']


def _checkpoint_variables(config, root: str, state: steps.TrainState) -> tuple:
  """(params, batch_stats, meta) of the newest checkpoint under a workdir or checkpoints directory, checked
  against this run's model. Parameters and BN statistics only: the optimizer belongs to this run."""
  ck_dir = os.path.join(root, 'checkpoints') if epath.Path(root, 'checkpoints').is_dir() else root
  with ckpt_lib.Checkpoints(ck_dir, read_only=True) as src:
    got = src.restore_latest_raw()
  if got is None:
    raise ConfigError('init_from', f'no readable, intact checkpoint under {root!r}; allowed: a workdir or its '
                      'checkpoints directory holding at least one checkpoint')
  other, meta = got
  params, stats = other['params'], other.get('batch_stats', {})
  want = jax.tree.map(lambda x: (x.shape, x.dtype), (state.params, state.batch_stats))
  have = jax.tree.map(lambda x: (x.shape, x.dtype), (params, stats))
  if jax.tree.structure(want) != jax.tree.structure(have) or jax.tree.leaves(want) != jax.tree.leaves(have):
    raise ConfigError('init_from', f'the checkpoint under {root!r} does not fit model {config.model!r} '
                      '(parameter names or shapes differ)')
  return params, stats, meta
