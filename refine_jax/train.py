"""The loop over the plan's phases: set up, train each phase, decide log / eval / save / stop in one place.

This is the one room that knows phases, models and data together. Every quantity that changes over the run
(phase, learning rate, mixing strength and probability, host augmentation probability, random keys) is a
function of the global step (`plan`, `schedules`), so restoring the step and parameters restores the run.
What is prepared before anything is written lives in `prepare`, the resume order in `restore`, the jitted steps
in `steps`, the eval and diagnostics in `evaluate`, the clock in `clock`.
"""
from __future__ import annotations

import functools
import time
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from refine_jax import checkpoint as ckpt_lib
from refine_jax import clock as clock_lib
from refine_jax import evaluate
from refine_jax import fields
from refine_jax import lock as lock_lib
from refine_jax import metrics as metrics_lib
from refine_jax import prepare
from refine_jax import restore
from refine_jax import runtime_env
from refine_jax import signals
from refine_jax import steps
from refine_jax import workdir as workdir_lib
from refine_jax.data import pipeline, sources
from refine_jax.errors import ConfigError, Diverged, Preempted
from refine_jax.plan import Phase, Plan
from refine_jax.spec import Spec


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs (or resumes, or re-reports) the run in `workdir`; returns summary.json's content. The workdir's lock is
  held from set-up to the summary, however the run ends."""
  # The handlers come first: a SIGTERM/SIGINT during set-up (reading data, compiling) is kept, not lost.
  with signals.Watch() as sig:
    run = set_up(config, workdir)
    with run.lock:
      try:
        stop = sig.agreed(True)
        if stop:
          raise Preempted(f'received signal {stop} during set-up, before training from step {run.step}; nothing '
                          'to save. Re-run the same command to resume.')
        run.complete_phase_end()
        for phase in run.plan.phases:
          if run.step < phase.end:
            train_phase(run, phase, sig)
      finally:
        run.close()
      return run.summary()


def set_up(config: ml_collections.ConfigDict, workdir: str) -> 'Run':
  """Validation, data, plan and size checks (nothing written if any fails), then the workdir's lock (exit 2 if
  another run holds it; it is the first thing written, creating the workdir), then the run restored; config.json
  is (re)written only once the workdir's checkpoint is known to fit, and only if its content changes. The run
  holds the lock (`run.lock`): the caller gives it back."""
  spec = prepare.spec_of(config)
  check_workdir(spec, workdir)
  _warn_unsafe_bfloat16(spec)
  plan, train, test = prepare.plan_and_splits(spec)
  held = lock_lib.take(workdir)
  try:
    run = Run(plan, workdir, train, test)
    if workdir_lib.is_writer():
      record, old = spec.as_dict(), workdir_lib.read_config(workdir) or {}
      if 'forked_from' in old:  # a forked run stays one when `main` resumes it
        record.setdefault('forked_from', old['forked_from'])
      record['train_data'] = sources.fingerprint(spec.data)  # what a fork of this run must train on
      workdir_lib.write_json(workdir_lib.path(workdir, workdir_lib.CONFIG), record, if_changed=True)
  except BaseException:
    held.release()
    raise
  run.lock = held
  return run


def check_workdir(spec: Spec, workdir: str) -> None:
  """Refuses a workdir holding a run that trains or measures something else (unless allow_config_change);
  fields whose role lets a resumed run change them (bookkeeping, the label) may differ. Writes nothing."""
  old = None if spec.allow_config_change else workdir_lib.read_config(workdir)
  if old is None:
    return
  d = fields.differences(old, spec.as_dict(), fields.RESUME_MAY_DIFFER)
  if d:
    lines = '\n'.join(f'  {k}: {a!r} (in workdir) -> {b!r} (now)' for k, a, b in d)
    raise ConfigError('allow_config_change', f'workdir {workdir} holds a run with a different config:\n{lines}\n'
                      'Use another --workdir, or pass --config.allow_config_change=True to continue anyway.')


def _warn_unsafe_bfloat16(spec: Spec) -> None:
  """bfloat16 on XLA:CPU without the YNNPACK workaround (`runtime_env`) evaluates to NaN on jaxlib >= 0.11."""
  state = runtime_env.ynn_workaround()
  if spec.model.dtype == 'bfloat16' and jax.default_backend() == 'cpu' and state.startswith(('missing', 'overr')):
    logging.warning('bfloat16 on the CPU: the XLA:CPU workaround %s is %s; evaluations may be NaN (the run then '
                    'stops, exit 4). See refine_jax/runtime_env.py.', runtime_env.YNN_WORKAROUND, state)


class Run:
  """One run between steps: the train state and step, its checkpoints (`Saver`), evaluator, writer and clock."""

  def __init__(self, plan: Plan, workdir: str, train: sources.Split, test: sources.Split):
    self.plan, self.workdir, self.train = plan, workdir, train
    self.lock: Optional[lock_lib.Held] = None  # the job's hold on the workdir's lock (`set_up` gives it)
    mesh = steps.make_mesh()
    logging.info('process %d of %d; %d local / %d global devices: %s; mesh %s', jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count(),
                 [str(d) for d in jax.local_devices()], dict(mesh.shape))
    self.env = steps.make_env(plan, mesh, num_classes=train.num_classes, mean=train.mean, std=train.std)
    self.sharding = NamedSharding(mesh, P('data'))
    image_shape = pipeline.output_shape(train, plan.phases[0].host_ops(1.0))
    fresh = jax.jit(functools.partial(steps.init_state, self.env, image_shape), static_argnums=0,
                    out_shardings=NamedSharding(mesh, P()))(plan.seed)
    self.saver = Saver(plan, workdir)
    try:
      self.state = restore.restore(plan.spec, self.saver.ckpts, fresh, workdir)
    except BaseException:
      self.saver.close()
      raise
    self.step = int(self.state.step)
    self.saver.good_step = self.step if self.saver.ckpts.steps() else None
    self.writer = metrics_lib.Writer(workdir)
    if workdir_lib.is_writer():
      workdir_lib.truncate_after(workdir_lib.path(workdir, workdir_lib.METRICS), self.step)
    self.evaluator = evaluate.Evaluator(self.env, plan, train, test, image_shape=image_shape)
    self.pending: list[tuple[int, jax.Array]] = []  # losses not yet checked
    self.clock = clock_lib.Clock(self.step)

  def complete_phase_end(self) -> None:
    """Measures the phase-end diagnostics of a run restored exactly at a phase's end whose eval row there lacks
    them (a fork at its switch step: the parent trained on past it), and adds them to that row. A normal run
    writes them into the row before saving the checkpoint, so a resumed run finds them (nothing measured twice)
    or resumes before the phase end and measures them again (a run killed while measuring)."""
    ended = [p for p in self.plan.phases if p.end == self.step]
    if not ended or self.evaluator.phase_end_examples == 0:
      return
    path = workdir_lib.path(self.workdir, workdir_lib.METRICS)
    at = [r for r in workdir_lib.read_jsonl(path) if r['step'] == self.step] if workdir_lib.is_writer() else []
    need = bool(at) and at[-1].get('phase') == ended[0].name and metrics_lib.PHASE_END_KEYS[0] not in at[-1]
    if jax.process_count() > 1:
      need = bool(multihost_utils.broadcast_one_to_all(np.int32(need)))
    if need:
      values = self.evaluator.phase_end(self.state, ended[0], self.step)
      self.check_metrics(values, ended[0], self.step)
      logging.info('phase-end diagnostics at step %d (%s): %s', self.step, ended[0].name, values)
      if workdir_lib.is_writer():
        workdir_lib.update_row(path, self.step, values)
      self.writer.scalars(self.step, {f'eval/{k}': v for k, v in values.items()})

  def check_metrics(self, values: dict, phase: Phase, step: int) -> None:
    """A non-finite evaluation metric is divergence: raises Diverged naming it, before anything is written or
    saved (no file of the run ever holds NaN or inf)."""
    bad = [k for k, v in values.items() if isinstance(v, float) and not np.isfinite(v)]
    if not bad:
      return
    where = ('the parameters are finite, so the evaluation itself produced it (numerics of the eval path, e.g. '
             'bfloat16 on a broken backend)' if self.saver.finite(self.state) else 'the parameters hold NaN or inf')
    also = f' (and {", ".join(bad[1:])})' if bad[1:] else ''
    raise Diverged(f'non-finite evaluation metric {bad[0]} = {values[bad[0]]}{also} at step {step} (phase '
                   f'{phase.name!r}); {where}. Stopped without writing or saving, so {self.saver.intact()}.')

  def close(self) -> None:
    self.saver.close()
    self.writer.close()

  def summary(self) -> dict:
    """summary.json (written by process 0, only if its content changes) from the eval rows in metrics.jsonl;
    timing.json when this invocation trained."""
    plan, writer = self.plan, workdir_lib.is_writer()
    rows = workdir_lib.read_jsonl(workdir_lib.path(self.workdir, workdir_lib.METRICS)) if writer else []
    summary = metrics_lib.summarize(rows, [p.name for p in plan.phases])
    summary.update(total_steps=plan.total_steps, steps_per_epoch=plan.steps_per_epoch)
    if writer:
      workdir_lib.write_json(workdir_lib.path(self.workdir, workdir_lib.SUMMARY), summary, if_changed=True)
    if self.clock.images:
      logging.info(self.clock.summary_line())
      if writer:
        workdir_lib.write_json(workdir_lib.path(self.workdir, workdir_lib.TIMING), self.clock.timing())
    return summary


class Saver:
  """The run's checkpoints: saves (asynchronous), and which checkpoint is known to be intact."""

  def __init__(self, plan: Plan, workdir: str):
    self.plan = plan
    self.ckpts = ckpt_lib.Checkpoints(workdir_lib.path(workdir, workdir_lib.CHECKPOINTS), plan.spec.checkpoints.keep,
                                      keep_steps=sorted(plan.keep_steps))
    # The newest checkpoint known to be intact and finished (restored and verified, or saved completely), and
    # the step of a save that may still be in flight (Orbax writes asynchronously while the loop goes on).
    self.good_step: Optional[int] = None
    self.saving: Optional[int] = None
    # A loss can stay finite for steps after the weights broke: never save a non-finite state.
    self._all_finite = jax.jit(steps.all_finite)

  def finite(self, state: steps.TrainState) -> bool:
    return bool(self._all_finite(state))

  def intact(self) -> str:
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

  def save(self, state: steps.TrainState, step: int) -> None:
    plan = self.plan
    phase = plan.phase_at(step - 1) if step else plan.phases[0]
    if not self.finite(state):
      raise Diverged(f'non-finite parameters or statistics after step {step} (phase {phase.name!r}); not saved, '
                     f'so {self.intact()}. Lower the learning rate or check the data.')
    epoch, offset = divmod(step, plan.steps_per_epoch)
    # Orbax first waits for the previous save (so it is finished: the last good one), copies the state to the
    # host and returns; the write and its atomic rename finish in the background while the loop goes on.
    self.ckpts.save(step, state, {'step': step, 'phase': phase.name, 'epoch': epoch, 'batch_in_epoch': offset,
                                  'seed': plan.seed, 'total_steps': plan.total_steps})
    if self.saving is not None:
      self.good_step = self.saving
    self.saving = step

  def wait(self) -> None:
    self.ckpts.wait()

  def close(self) -> None:
    self.ckpts.close()


# --------------------------------------------------------------------------- the loop


def train_phase(run: Run, phase: Phase, sig: signals.Watch) -> None:
  """Trains from the current step to the phase's end (the host pipeline is rebuilt for the phase)."""
  plan, spec, spe = run.plan, run.plan.spec, run.plan.steps_per_epoch
  logging.info('phase %r: steps %d..%d (epochs %.2f..%.2f), pp=%r, mix=%s', phase.name, phase.start, phase.end,
               phase.start / spe, phase.end / spe, phase.pp, phase.mix.kind)
  step_fn = jax.jit(functools.partial(steps.train_step, run.env, phase.mix), donate_argnums=0)

  def pp_for_epoch(e: int):
    return phase.host_ops(float(plan.aug_prob(max(phase.start, e * spe))))
  host = pipeline.train_batches(run.train, pp_for_epoch, batch=spec.batch_size,
                                rows=pipeline.process_rows(run.sharding, spec.batch_size), steps_per_epoch=spe,
                                seed=plan.seed, start_step=run.step)
  # Batches k+1.. are read and transferred by a thread while step k runs; the loop never blocks on the device
  # (losses are read at check steps only). The phase's first dispatch returns once compiled: its speed starts then.
  with pipeline.device_batches(host, run.sharding, spec.prefetch) as batches:
    run.clock.restart(run.step)
    t_loop = None
    try:
      while run.step < phase.end:
        batch = next(batches)
        with jax.transfer_guard('disallow'):  # the step must find everything on device already
          run.state, loss = step_fn(run.state, batch)
        run.pending.append((run.step, loss))
        run.step += 1
        run.clock.images += spec.batch_size
        if t_loop is None:  # the phase's first step, compiled and dispatched
          t_loop = time.time()
          run.clock.restart(run.step)
        on_step_end(run, phase, sig)
    finally:
      run.clock.seconds['loop'] += time.time() - (t_loop or time.time())


def on_step_end(run: Run, phase: Phase, sig: signals.Watch) -> None:
  """The one place that decides, after each step, whether to log, evaluate, save or stop."""
  step, ev = run.step, run.plan.events(run.step)
  # All processes decide to stop at the same step (a signal may reach only one host).
  stop = sig.agreed(ev.sync)
  if ev.check_loss or stop:
    last_loss = _check_finite(run.pending, phase, step, run.saver.intact)
    run.pending = []
    if ev.log:
      _log(run, phase, last_loss)
  if ev.eval:
    _evaluate(run, phase, step)
  if ev.save:
    _save(run, step)
  if stop:
    if not ev.save:  # else saved just above; Orbax refuses a second save of a step
      _save(run, step)
    run.saver.wait()  # the process may exit only once the save has finished
    raise Preempted(f'received signal {stop} at step {step} (phase {phase.name!r}); saved a checkpoint. Re-run '
                    f'the same command to resume from step {step}.')


def _evaluate(run: Run, phase: Phase, step: int) -> None:
  """The eval row (with the phase-end diagnostics at a phase's end, before the save), checked, then written."""
  t = time.time()
  row = run.evaluator(run.state, phase, step)
  if step == phase.end and run.evaluator.phase_end_examples != 0:
    row.update(run.evaluator.phase_end(run.state, phase, step))
  run.check_metrics(row, phase, step)
  run.writer.eval_row(row)
  run.clock.add('eval', t)
  run.clock.first_evals.setdefault(phase.name, time.time() - t)
  logging.info('eval step %d (%s): %s (%.2fs)', step, phase.name, metrics_lib.log_line(row), time.time() - t)


def _save(run: Run, step: int) -> None:
  t = time.time()
  run.saver.save(run.state, step)
  run.clock.add('save', t)


def _log(run: Run, phase: Phase, loss: float) -> None:
  plan, step = run.plan, run.step
  ips, eta = run.clock.progress(step, plan.total_steps, plan.spec.batch_size)
  lr = float(plan.lr(step - 1))
  logging.info('step %d/%d  epoch %.2f  phase %s  loss %.4f  lr %.5g  %.0f images/s  ETA %s', step,
               plan.total_steps, step / plan.steps_per_epoch, phase.name, loss, lr, ips, eta)
  speed = {'train/images_per_s': ips} if ips > 0 else {}
  run.writer.scalars(step, {'train/loss': loss, 'train/lr': lr, **speed})


def _check_finite(pending: list[tuple[int, jax.Array]], phase: Phase, now: int, intact: Callable[[], str]) -> float:
  """The last pending loss; raises Diverged at the first non-finite one (`intact()` names the good checkpoint)."""
  losses = np.asarray(jax.device_get([l for _, l in pending]), np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    s = pending[bad[0]][0]
    raise Diverged(f'non-finite loss {losses[bad[0]]} at step {s} (phase {phase.name!r}), detected after step '
                   f'{now}; stopped without saving, so {intact()}. Lower the learning rate or check the data.')
  return float(losses[-1])
