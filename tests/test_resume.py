"""Interrupted runs resume to exactly the uninterrupted result; bad workdirs and divergence stop cleanly.

Every scenario runs the real entry point (`python -m refine_jax.main`) in a subprocess on the digits demo with
TINY_DIGITS (22 steps/epoch at batch 64: 2 augmented + 1 refine epochs = 66 steps, phase boundary at step 44) and a
checkpoint every 8 steps, so checkpoints land at 8 16 24 32 40 44 48 56 64 66 (all kept). "Equal to the
reference" always means all of: metrics.jsonl rows and summary.json equal as JSON, the same checkpoint steps
kept, no Orbax temporary directory left, and every array of the final checkpoint (parameters, batch statistics,
optimizer state, step) equal bit for bit, plus its meta record.

Kill points are found by watching files under the workdir every 20 ms (checkpoint step directories, Orbax's
`<step>.orbax-checkpoint-tmp` directory of a save in flight, the tensorboard directory).

Time: each launch costs ~10 s of CPU before it trains (imports, data, compiling), and this file may use about five
minutes of wall time on two shared cores. So (1) the scenarios run in a pool of two worker threads started by the
module fixture `launched` (only the scenarios of the selected tests), and the tests assert on what they recorded;
(2) the processes share a persistent XLA compilation cache in a temporary directory of this session (compiling
is deterministic: a cached executable is the one a fresh compile makes); (3) where the kill itself is not what is
tested (the damaged checkpoint, the other config, the init_from source) a copy of the reference workdir cut back
to one of its checkpoints stands for the interrupted run. REFINE_JAX_TEST_WORKERS=0 runs each scenario when its
test first asks for it (as under pytest-xdist); REFINE_JAX_TEST_NO_COMPILE_CACHE=1 compiles cold.
"""
from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Optional

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_DIGITS, env_for, read_rows, read_summary

CONFIG = os.path.join(ROOT, 'configs', 'digits_demo.py')
SPE = 22  # steps per epoch: 1437 training digits // 64
BOUNDARY, TOTAL = 2 * SPE, 3 * SPE  # 44, 66
# Every checkpoint is kept, so that a copy of the reference workdir can stand for a run interrupted at any of them.
ARGS = TINY_DIGITS + ['--config.checkpoint_every_steps=8', '--config.keep_checkpoints=20']
ALL_STEPS = [8, 16, 24, 32, 40, 44, 48, 56, 64, 66]
POLL_S = 0.02
TIMEOUT_S = 300
TMP_MARK = '.orbax-checkpoint-tmp'

_ENV: dict = {}
_LOG_IDS = itertools.count(1)
_LIVE: set = set()


# --------------------------------------------------------------------------- running the entry point


class Run:
  """`python -m refine_jax.main` in the background; stdout/stderr go to files (an unread pipe could block it)."""

  def __init__(self, workdir: str, *overrides: str):
    assert _ENV, 'the module fixture sets up the environment first'
    self.workdir = workdir
    base = f'{workdir}.log{next(_LOG_IDS)}'
    self.out_path, self.err_path = base + '.out', base + '.err'
    cmd = [sys.executable, '-m', 'refine_jax.main', f'--config={CONFIG}', f'--workdir={workdir}', *overrides]
    with open(self.out_path, 'w') as out, open(self.err_path, 'w') as err:
      self.proc = subprocess.Popen(cmd, cwd=ROOT, env=_ENV, stdout=out, stderr=err)
    _LIVE.add(self)

  def wait(self, timeout: float = TIMEOUT_S) -> int:
    try:
      return self.proc.wait(timeout)
    except subprocess.TimeoutExpired:
      self.kill()
      raise AssertionError(f'run did not finish in {timeout}s\n{self.tail()}')
    finally:
      if self.proc.returncode is not None:
        _LIVE.discard(self)

  def kill(self, sig: int = signal.SIGKILL) -> int:
    if self.proc.poll() is None:
      self.proc.send_signal(sig)
    return self.wait()

  def alive(self) -> bool:
    return self.proc.poll() is None

  @property
  def rc(self) -> Optional[int]:
    return self.proc.returncode

  @property
  def stderr(self) -> str:
    with open(self.err_path) as f:
      return f.read()

  @property
  def stdout(self) -> str:
    with open(self.out_path) as f:
      return f.read()

  def tail(self) -> str:
    return f'exit {self.rc}\nSTDOUT:\n{self.stdout[-2000:]}\nSTDERR:\n{self.stderr[-5000:]}'


def run(workdir: str, *overrides: str, rc: Optional[int] = 0) -> Run:
  r = Run(workdir, *overrides)
  code = r.wait()
  if rc is not None:
    assert code == rc, f'expected exit {rc}\n{r.tail()}'
  return r


def wait_for(r: Run, cond: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
  """Polls `cond` every 20 ms while the run is alive; fails if the run ends first."""
  deadline = time.monotonic() + timeout
  while True:
    alive = r.alive()
    if cond() and alive:
      return
    assert alive, f'the run ended before the kill point ({what})\n{r.tail()}'
    if time.monotonic() > deadline:
      r.kill()
      raise AssertionError(f'kill point ({what}) not reached in {timeout}s\n{r.tail()}')
    time.sleep(POLL_S)


# --------------------------------------------------------------------------- looking at a workdir


def ckpt_dir(w: str) -> str:
  return os.path.join(w, 'checkpoints')


def steps(w: str) -> list[int]:
  """Finished checkpoints (Orbax renames the temporary directory to the bare step number when a save completes)."""
  d = ckpt_dir(w)
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def tmp_dirs(w: str) -> list[str]:
  return sorted(os.path.basename(p) for p in glob.glob(os.path.join(ckpt_dir(w), f'*{TMP_MARK}*')))


def rows_tolerant(w: str) -> list[dict]:
  """metrics.jsonl as a killed run may leave it (a torn last line is dropped)."""
  p = os.path.join(w, 'metrics.jsonl')
  out = []
  if os.path.exists(p):
    with open(p) as f:
      for line in f:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          break
  return out


def resumed_from(stderr: str) -> Optional[int]:
  m = re.search(r'resumed .* at step (\d+) \(phase', stderr)
  return int(m[1]) if m else None


def load_checkpoint(directory: str, step: int) -> tuple[dict, dict]:
  """({key path: numpy array}, meta) of checkpoint `step` under a checkpoints directory, read without a target."""
  import jax
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True),
                               item_names=('state', 'meta'))
  try:
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  finally:
    mngr.close()
  flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(out['state'])[0]}
  return flat, dict(out['meta'])


def assert_states_equal(a: dict, b: dict, what: str) -> None:
  assert sorted(a) == sorted(b), f'{what}: different arrays: {sorted(set(a) ^ set(b))[:10]}'
  bad = []
  for k in sorted(a):
    x, y = a[k], b[k]
    if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
      diff = (float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
              if x.shape == y.shape and x.size else None)
      bad.append(f'{k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}, max |diff| {diff}')
  assert not bad, f'{what}: {len(bad)} of {len(a)} arrays differ:\n' + '\n'.join(bad[:10])


def assert_equals_reference(w: str, ref: dict, extra_steps=()) -> None:
  assert read_rows(w) == ref['rows'], 'metrics.jsonl differs from the uninterrupted run'
  assert read_summary(w) == ref['summary'], 'summary.json differs from the uninterrupted run'
  assert steps(w) == sorted(ref['steps'] + list(extra_steps)), 'a different set of checkpoints is kept'
  assert not tmp_dirs(w), f'temporary checkpoint directories left behind: {tmp_dirs(w)}'
  state, meta = load_checkpoint(ckpt_dir(w), TOTAL)
  assert meta == ref['meta']
  assert_states_equal(state, ref['state'], f'final checkpoint of {w} vs the uninterrupted run')


def assert_rows_on_reference_path(rows: list[dict], ref: dict, what: str) -> None:
  """Every eval row a run wrote before it was interrupted is the uninterrupted run's row for that step."""
  by_step = {r['step']: r for r in ref['rows']}
  for r in rows:
    assert r == by_step.get(r['step']), f'{what}: row for step {r["step"]} differs from the reference:\n{r}'


def snapshot(w: str) -> dict:
  """Every file and directory under `w`: size, mtime and content hash of each file."""
  out = {}
  for root, dirs, files in os.walk(w):
    for d in dirs:
      out[os.path.relpath(os.path.join(root, d), w) + '/'] = None
    for f in files:
      p = os.path.join(root, f)
      st = os.stat(p)
      with open(p, 'rb') as fh:
        out[os.path.relpath(p, w)] = (st.st_size, st.st_mtime_ns, hashlib.sha1(fh.read()).hexdigest())
  return out


def interrupted_copy(ref_w: str, w: str, last: int) -> str:
  """The reference workdir as a run killed right after its checkpoint `last` leaves it (later checkpoints and eval
  rows and summary.json gone; the write of a later one that never completed is cleaned up at start anyway)."""
  shutil.copytree(ref_w, w)
  for s in steps(w):
    if s > last:
      shutil.rmtree(os.path.join(ckpt_dir(w), str(s)))
  os.remove(os.path.join(w, 'summary.json'))
  rows = [x for x in read_rows(ref_w) if x['step'] <= last]
  with open(os.path.join(w, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(x, sort_keys=True) + '\n' for x in rows)
  return w


def damage(step_dir: str) -> str:
  """Truncates the largest array-data file of a checkpoint to half its size (a failing disk); returns its path."""
  files = [p for p in glob.glob(os.path.join(step_dir, 'state', '**', '*'), recursive=True) if os.path.isfile(p)]
  victim = max(files, key=os.path.getsize)
  os.truncate(victim, os.path.getsize(victim) // 2)
  return victim


# --------------------------------------------------------------------------- scenarios (run in worker threads)
#
# Each scenario makes its launches (and its kills) and returns what it saw; the tests assert on that. The dict's
# order is the order in which they are handed to the workers: the reference first, then the diverging run (its own
# compilations, cold anyway), so that the long kill chain starts once the reference has filled the compile cache.

SCENARIOS: dict[str, Callable] = {}


def scenario(fn):
  SCENARIOS[fn.__name__] = fn
  return fn


def uses(*names: str):
  """The scenarios a test reads; `launched` runs only those of the selected tests."""
  def deco(fn):
    fn.scenarios = names
    return fn
  return deco


@scenario
def reference(d: str, get) -> dict:
  w = os.path.join(d, 'w')
  return {'workdir': w, 'run': run(w, *ARGS)}


@scenario
def diverged(d: str, get) -> dict:
  """A run whose loss blows up (lr 1e6), with a checkpoint after every step so some exist before it does."""
  w = os.path.join(d, 'w')
  r = run(w, *TINY_DIGITS, '--config.phases.augmented.lr.base=1e6', '--config.checkpoint_every_steps=1', rc=None)
  return {'workdir': w, 'run': r}


def new_checkpoint(pred: Callable[[int], bool]) -> Callable[[str, list], bool]:
  """True once a checkpoint step satisfying `pred` exists that was not there when the launch started."""
  return lambda w, at_start: any(pred(s) and s not in at_start for s in steps(w))


EARLY_KILL, WRITE_KILL = 'early: training started, no checkpoint yet', 'during a checkpoint write'
KILL_POINTS = {  # name -> condition(workdir, checkpoint steps when the launch started)
    # config.json is written after restoring, right before the first train step is compiled and run.
    EARLY_KILL: lambda w, at_start: (os.path.isfile(os.path.join(w, 'config.json')) and not steps(w)
                                     and not tmp_dirs(w)),
    'mid-epoch: right after a checkpoint inside an augmented epoch (8, 16, 24, 32 or 40)':
        new_checkpoint(lambda s: s < BOUNDARY and s % SPE),
    # A save in flight while an earlier checkpoint is complete.
    WRITE_KILL: lambda w, at_start: bool(tmp_dirs(w)) and bool(steps(w)),
    f'phase boundary: right after checkpoint {BOUNDARY}': new_checkpoint(lambda s: s == BOUNDARY),
    'refinement: right after a checkpoint inside the refine epoch (48, 56 or 64)':
        new_checkpoint(lambda s: BOUNDARY < s < TOTAL),
}


@scenario
def kill_chain(d: str, get) -> dict:
  """Launch; SIGKILL as soon as the condition of a pending kill point holds; re-run the same command; ... until a
  launch finishes.

  A kill is credited to the first pending kill point (in KILL_POINTS order) whose condition still holds once the
  process is dead. So a write kill counts only if the temporary directory outlived the process (the save did not
  complete in the instant before the kill); if the rename won the race, the kill is one "right after a
  checkpoint" instead and the write kill stays pending for a later save. Only the early kill has a (theoretical)
  race: eight steps and a compilation would have to fit between two 20 ms polls.
  """
  w = os.path.join(d, 'w')
  pending = list(KILL_POINTS)
  launches, kills = [], []
  while len(launches) < 3 * len(KILL_POINTS):
    at_start = steps(w)
    r = Run(w, *ARGS)
    launches.append(r)
    deadline = time.monotonic() + TIMEOUT_S
    while r.alive() and not any(KILL_POINTS[k](w, at_start) for k in pending):
      assert time.monotonic() < deadline, f'no kill point reached in {TIMEOUT_S}s\n{r.tail()}'
      time.sleep(POLL_S)
    if not r.alive():
      r.wait()
      break
    at_kill = (steps(w), tmp_dirs(w))
    r.kill()
    credited = next((k for k in pending if KILL_POINTS[k](w, at_start)), None)
    if credited:
      pending.remove(credited)
    kills.append({'point': credited, 'steps_at_start': at_start, 'steps_at_kill': at_kill[0],
                  'in_flight_at_kill': at_kill[1], 'steps_after': steps(w), 'in_flight_after': tmp_dirs(w),
                  'rows': rows_tolerant(w), 'summary': os.path.exists(os.path.join(w, 'summary.json'))})
  return {'workdir': w, 'launches': launches, 'kills': kills, 'pending': pending}


@scenario
def sigterm(d: str, get) -> dict:
  """SIGTERM right after checkpoint 44 appears: the refine step is still being compiled then, so the loop notices
  the signal after step 45 (batch 1 of epoch 2, not a checkpoint step)."""
  w = os.path.join(d, 'w')
  r = Run(w, *ARGS)
  wait_for(r, lambda: BOUNDARY in steps(w), f'checkpoint {BOUNDARY}')
  r.kill(signal.SIGTERM)
  out = {'workdir': w, 'first': r, 'steps': steps(w), 'in_flight': tmp_dirs(w), 'rows': rows_tolerant(w),
         'summary': os.path.exists(os.path.join(w, 'summary.json'))}
  if out['steps']:  # a copy as the run left it, to read in the test after the re-run
    newest = str(max(out['steps']))
    out['saved'] = os.path.join(d, 'saved')
    shutil.copytree(os.path.join(ckpt_dir(w), newest), os.path.join(out['saved'], newest))
  if r.rc == 3:
    out['rerun'] = run(w, *ARGS, rc=None)
  return out


REFINE_ONLY = ['--config.phase_order=refine', f'--config.phases.refine.steps={SPE}',
               '--config.phases.refine.lr.base=0.01', '--config.eval_every_steps=11']


@scenario
def init_from(d: str, get) -> dict:
  """A refine-only run initialised from a source without refinement, killed after its first checkpoint and re-run
  with the source moved away (a re-run that looked at init_from again would fail).

  The source is the reference workdir as it stood at the end of its augmented phase (checkpoint 44 the newest):
  the same parameters a `--config.phase_order=augmented` run makes, without spending a launch and a compilation
  on it (the time budget)."""
  src = interrupted_copy(get('reference')['workdir'], os.path.join(d, 'source'), BOUNDARY)
  src_rows, src_steps = read_rows(src), steps(src)
  w = os.path.join(d, 'refine_only')
  args = [*ARGS, *REFINE_ONLY, f'--config.init_from={src}']
  first = Run(w, *args)
  wait_for(first, lambda: 8 in steps(w), 'checkpoint 8 of the refine-only run')
  first.kill()
  shutil.move(src, src + '.moved')
  rerun = run(w, *args, rc=None)
  return {'src': src, 'src_rows': src_rows, 'src_steps': src_steps, 'workdir': w, 'first': first,
          'rerun': rerun}


@scenario
def damaged(d: str, get) -> dict:
  """A run killed right after checkpoint 64, whose checkpoint 64 is then truncated."""
  w = interrupted_copy(get('reference')['workdir'], os.path.join(d, 'w'), 64)
  prev, newest = steps(w)[-2:]
  victim = damage(os.path.join(ckpt_dir(w), str(newest)))
  return {'workdir': w, 'prev': prev, 'newest': newest, 'victim': victim, 'rerun': run(w, *ARGS, rc=None)}


OTHER_CONFIG = ['--config.log_every_steps=5', '--config.eval_every_steps=33']


@scenario
def other_config(d: str, get) -> dict:
  """The reference workdir as a run interrupted after checkpoint 56 leaves it, re-run with two fields changed that
  leave the trajectory alone (so the continued run must still end on the reference state)."""
  w = interrupted_copy(get('reference')['workdir'], os.path.join(d, 'w'), 56)
  before = snapshot(w)
  refused = run(w, *ARGS, *OTHER_CONFIG, rc=None)
  after = snapshot(w)
  allowed = run(w, *ARGS, *OTHER_CONFIG, '--config.allow_config_change=True', rc=None)
  return {'workdir': w, 'before': before, 'after': after, 'refused': refused, 'allowed': allowed}


@scenario
def sigterm_on_checkpoint_step(d: str, get) -> dict:
  """With a checkpoint after every step, the step at which the loop notices a SIGTERM is always a checkpoint step."""
  w = os.path.join(d, 'w')
  r = Run(w, *TINY_DIGITS, '--config.checkpoint_every_steps=1')
  wait_for(r, lambda: len(steps(w)) >= 2, 'two checkpoints')
  r.kill(signal.SIGTERM)
  return {'workdir': w, 'run': r}


@scenario
def prefetch_off(d: str, get) -> dict:
  """The reference's command with the device prefetch off: the loop reads and transfers each batch itself."""
  w = os.path.join(d, 'w')
  return {'workdir': w, 'run': run(w, *ARGS, '--config.prefetch_to_device=0')}


ASYNC_ARGS = ARGS + ['--config.log_every_steps=1']  # every step logged: the loop's progress seen from outside


def save_overtaken(w: str, r: Run) -> Optional[tuple[int, int]]:
  """(step of a save in flight, newest step logged) once the loop has trained past a save still being written."""
  flying = [int(n.split('.')[0]) for n in tmp_dirs(w)]
  logged = [int(m) for m in re.findall(r'\] step (\d+)/', r.stderr)]
  if flying and logged and max(logged) > min(flying):
    return min(flying), max(logged)
  return None


@scenario
def kill_async_save(d: str, get) -> dict:
  """SIGKILL once the loop has gone on past a checkpoint whose asynchronous write is still in flight (its
  temporary directory there, a later step logged); a kill counts once that directory outlived the process
  (else the rename won the race: launch again, up to 6 times). Then the same command runs to the end."""
  w = os.path.join(d, 'w')
  kills = []
  for _ in range(6):
    r = Run(w, *ASYNC_ARGS)
    deadline = time.monotonic() + TIMEOUT_S
    while r.alive() and not save_overtaken(w, r):
      assert time.monotonic() < deadline, r.tail()
      time.sleep(POLL_S)
    seen = save_overtaken(w, r)
    if not r.alive():
      r.wait()
      break
    r.kill()
    kills.append({'seen': seen, 'in_flight_after': tmp_dirs(w), 'steps_after': steps(w), 'rows': rows_tolerant(w)})
    if kills[-1]['in_flight_after']:
      break
  return {'workdir': w, 'kills': kills, 'final': run(w, *ASYNC_ARGS, rc=None)}


class Launched:
  """The scenarios' results. With workers > 0 all of `names` start at once in a pool of that many threads; with
  workers == 0 (and under pytest-xdist, where a worker cannot tell which tests it will get) each scenario runs in
  the calling thread the first time a test asks for it."""

  def __init__(self, root, names: set[str], workers: int):
    self._root = root
    self._futures: dict[str, concurrent.futures.Future] = {}
    self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix='scenario') if workers else None
    if self._pool:
      for name, fn in SCENARIOS.items():
        if name in names:
          self._futures[name] = self._pool.submit(fn, str(root.mktemp(name)), self.get)

  def get(self, name: str) -> dict:
    if name not in self._futures:  # lazy mode
      f = self._futures[name] = concurrent.futures.Future()
      try:
        f.set_result(SCENARIOS[name](str(self._root.mktemp(name)), self.get))
      except BaseException as e:  # noqa: BLE001 - kept for every test that reads this scenario
        f.set_exception(e)
    return self._futures[name].result()

  def close(self) -> None:
    for f in self._futures.values():
      f.cancel()
    for r in list(_LIVE):
      if r.alive():
        r.proc.kill()
    if self._pool:
      self._pool.shutdown(wait=True)


@pytest.fixture(scope='module')
def _subprocess_env(tmp_path_factory):
  env = env_for()
  if not os.environ.get('REFINE_JAX_TEST_NO_COMPILE_CACHE'):
    env.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp('xla_cache')),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0', JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')
  _ENV.clear()
  _ENV.update(env)
  yield
  _ENV.clear()


@pytest.fixture(scope='module')
def launched(request, tmp_path_factory, _subprocess_env):
  names = set()
  for item in request.session.items:
    if getattr(item, 'module', None) is request.module:
      names.update(getattr(item.function, 'scenarios', ()))
  if names & {'init_from', 'damaged', 'other_config'}:  # they start from a copy of the reference workdir
    names.add('reference')
  workers = 0 if os.environ.get('PYTEST_XDIST_WORKER') else int(os.environ.get('REFINE_JAX_TEST_WORKERS', '2'))
  scenarios = Launched(tmp_path_factory, names, workers)
  yield scenarios
  scenarios.close()


@pytest.fixture(scope='module')
def ref(launched) -> dict:
  """The uninterrupted run of ARGS that every interrupted run must reproduce exactly."""
  got = launched.get('reference')
  w, r = got['workdir'], got['run']
  assert resumed_from(r.stderr) is None
  rows = read_rows(w)
  assert [(x['step'], x['phase']) for x in rows] == [(22, 'augmented'), (44, 'augmented'), (66, 'refine')]
  assert steps(w) == ALL_STEPS
  state, meta = load_checkpoint(ckpt_dir(w), TOTAL)
  assert meta == {'step': TOTAL, 'phase': 'refine', 'epoch': 3, 'batch_in_epoch': 0, 'seed': 0,
                  'total_steps': TOTAL}
  return {'workdir': w, 'rows': rows, 'summary': read_summary(w), 'steps': steps(w), 'state': state,
          'meta': meta, 'stdout': r.stdout}


# --------------------------------------------------------------------------- 1. SIGKILL at five points


@uses('reference', 'kill_chain')
def test_sigkill_at_five_points_then_rerun_equals_uninterrupted(launched, ref):
  """One workdir goes through all five kills (each re-run is the next kill's victim), which keeps this to six
  launches. After each kill the re-run must resume from the newest complete checkpoint (from scratch after the
  early kill) without having to skip an unreadable one, every eval row written so far must be the reference's,
  and the launch that finally completes must end on the reference state."""
  got = launched.get('kill_chain')
  w, launches, kills = got['workdir'], got['launches'], got['kills']
  brief = [{k: v for k, v in kill.items() if k != 'rows'} for kill in kills]
  trace = '\n'.join(f'  {k}' for k in brief)
  assert not got['pending'], f'kill points never reached: {got["pending"]}; kills:\n{trace}'
  assert kills[0]['point'] == EARLY_KILL and not kills[0]['steps_after'], trace
  assert [k for k in kills if k['point'] == WRITE_KILL and k['in_flight_after']], trace
  assert len(launches) == len(kills) + 1
  for i, r in enumerate(launches):
    before = brief[i - 1] if i else None
    expect = max(before['steps_after']) if before and before['steps_after'] else None
    what = f'launch {i + 1}, after the kill {before}' if before else 'launch 1'
    assert resumed_from(r.stderr) == expect, f'{what}: resumed from {resumed_from(r.stderr)}\n{r.tail()}'
    assert 'unreadable' not in r.stderr, f'{what}\n{r.tail()}'
    if i < len(kills):
      assert not kills[i]['summary'], f'{what}: summary.json written by a run that did not finish'
      assert_rows_on_reference_path(kills[i]['rows'], ref, what)
  assert launches[-1].rc == 0, f'final launch; kills:\n{trace}\n{launches[-1].tail()}'
  assert_equals_reference(w, ref)
  assert json.loads(launches[-1].stdout) == json.loads(ref['stdout'])


# --------------------------------------------------------------------------- 2. SIGTERM


@uses('reference', 'sigterm')
def test_sigterm_mid_epoch_saves_exits_3_and_rerun_equals_uninterrupted(launched, ref):
  got = launched.get('sigterm')
  r = got['first']
  assert r.rc == 3, r.tail()
  m = re.search(r'preempted: .*Re-run the same command to resume from step (\d+)', r.stderr)
  assert m, r.tail()
  s = int(m[1])
  assert BOUNDARY < s < TOTAL and s % SPE, f'not mid-epoch: step {s}'
  assert max(got['steps']) == s and not got['in_flight'], got
  assert not got['summary']
  state, meta = load_checkpoint(got['saved'], s)
  assert meta == {'step': s, 'phase': 'refine', 'epoch': s // SPE, 'batch_in_epoch': s % SPE, 'seed': 0,
                  'total_steps': TOTAL}
  assert int(state["['step']"]) == s
  assert_rows_on_reference_path(got['rows'], ref, 'preempted run')
  r2 = got['rerun']
  assert r2.rc == 0, r2.tail()
  assert resumed_from(r2.stderr) == s, r2.tail()
  assert_equals_reference(got['workdir'], ref, extra_steps=[s])


@uses('sigterm_on_checkpoint_step')
def test_sigterm_on_a_checkpoint_step_still_saves_and_exits_3(launched):
  """The preemption save must not collide with the regular save of the same step."""
  got = launched.get('sigterm_on_checkpoint_step')
  w, r = got['workdir'], got['run']
  assert r.rc == 3, r.tail()
  m = re.search(r'resume from step (\d+)', r.stderr)
  assert m, r.tail()
  s = int(m[1])
  assert max(steps(w)) == s and not tmp_dirs(w)
  state, meta = load_checkpoint(ckpt_dir(w), s)
  assert meta['step'] == s and int(state["['step']"]) == s


@uses('reference', 'prefetch_off')
def test_the_device_prefetch_off_ends_bit_for_bit_on_the_reference(launched, ref):
  """The prefetch thread (on in the reference, depth 2) hands the loop the batches it would have read itself."""
  got = launched.get('prefetch_off')
  assert 'device-prefetch' not in got['run'].stderr, got['run'].tail()
  assert_equals_reference(got['workdir'], ref)


@uses('reference', 'kill_async_save')
def test_sigkill_while_an_async_save_is_written_behind_the_loop_then_rerun_equals_uninterrupted(launched, ref):
  """Saves are asynchronous: the loop trains on while checkpoint s is written. Killed then, the write is lost
  (its temporary directory is what remains), the re-run resumes from the checkpoint before s and ends bitwise
  on the reference."""
  got = launched.get('kill_async_save')
  kills, final = got['kills'], got['final']
  trace = '\n'.join(f'  {k["seen"]} in flight after {k["in_flight_after"]} steps {k["steps_after"]}' for k in kills)
  assert kills and kills[-1]['in_flight_after'], f'no kill with a save in flight behind the loop:\n{trace}'
  flying, logged = kills[-1]['seen']
  assert logged > flying and flying not in kills[-1]['steps_after'], trace
  assert_rows_on_reference_path(kills[-1]['rows'], ref, 'killed run')
  assert final.rc == 0, final.tail()
  before = kills[-1]['steps_after']
  assert resumed_from(final.stderr) == (max(before) if before else None), final.tail()
  assert 'unreadable' not in final.stderr, final.tail()
  assert_equals_reference(got['workdir'], ref)


# --------------------------------------------------------------------------- 3. a damaged latest checkpoint


@uses('reference', 'damaged')
def test_damaged_latest_checkpoint_is_skipped_with_a_warning(launched, ref):
  """The newest checkpoint of an interrupted run truncated: the re-run warns, resumes from the one before, and
  ends on the reference state."""
  got = launched.get('damaged')
  r = got['rerun']
  assert r.rc == 0, f'damaged {got["victim"]}\n{r.tail()}'
  assert re.search(rf'step {got["newest"]} .*unreadable', r.stderr), r.tail()
  assert resumed_from(r.stderr) == got['prev'], r.tail()
  assert_equals_reference(got['workdir'], ref)


# --------------------------------------------------------------------------- 4. divergence


@uses('diverged')
def test_divergence_exits_4_names_step_and_phase_and_saves_nothing_after(launched):
  got = launched.get('diverged')
  w, r = got['workdir'], got['run']
  assert r.rc == 4, r.tail()
  m = re.search(r"diverged: non-finite .*?(?:at|after) step (\d+) \(phase 'augmented'\)", r.stderr)
  assert m, r.tail()
  s = int(m[1])
  kept = steps(w)
  assert not tmp_dirs(w)
  assert not os.path.exists(os.path.join(w, 'summary.json'))
  # Nothing after step s was written (the loss of step s comes from the state after s updates, i.e. checkpoint s;
  # with a checkpoint after every step at least one exists before the blow-up).
  assert kept and max(kept) <= s, f'diverged at step {s}; checkpoints {kept}\n{r.tail()}'
  for k in kept:  # intact and loadable
    state, meta = load_checkpoint(ckpt_dir(w), k)
    assert meta['step'] == k == int(state["['step']"]) and meta['phase'] == 'augmented'


@uses('diverged')
def test_divergence_leaves_no_checkpoint_with_non_finite_arrays(launched):
  """The message promises 'the last good checkpoint is intact': a checkpoint of NaN/inf weights is not good."""
  got = launched.get('diverged')
  w, r = got['workdir'], got['run']
  assert r.rc == 4, r.tail()
  last = r.stderr.strip().splitlines()[-1]
  for k in steps(w):
    state, _ = load_checkpoint(ckpt_dir(w), k)
    bad = [n for n, v in state.items() if v.dtype.kind == 'f' and not np.isfinite(v).all()]
    assert not bad, (f'checkpoint {k} (kept as good; the run stopped with: {last}) holds {len(bad)} non-finite '
                     f'arrays of {len(state)}, e.g. {bad[:4]}')


# --------------------------------------------------------------------------- 5. a workdir of another config


@uses('reference', 'other_config')
def test_workdir_with_another_config_is_refused_untouched_then_allowed(launched, ref):
  got = launched.get('other_config')
  w, r = got['workdir'], got['refused']
  assert r.rc == 2, r.tail()
  err = r.stderr
  assert 'different config' in err and 'allow_config_change' in err, r.tail()
  # Only what changes what is measured or trained is named: eval_every_steps; log_every_steps changed too, but a
  # resumed run may change bookkeeping (issue 24: it was refused with it).
  assert re.search(r'eval_every_steps: None .*-> 33', err) and 'log_every_steps' not in err, err
  diff_lines = [l for l in err.splitlines() if '(in workdir) ->' in l]
  assert len(diff_lines) == 1, diff_lines
  assert got['after'] == got['before'], 'the refused run changed the workdir'

  r = got['allowed']
  assert r.rc == 0, r.tail()
  assert resumed_from(r.stderr) == 56, r.tail()
  with open(os.path.join(w, 'config.json')) as f:
    cfg = json.load(f)
  assert cfg['log_every_steps'] == 5 and cfg['eval_every_steps'] == 33 and cfg['allow_config_change'] is True
  # Evals every 33 steps and at phase ends: 33, 44, 66; from 56 only 66 is new, as in the reference.
  assert_equals_reference(w, ref)


# --------------------------------------------------------------------------- 6. init_from


@uses('init_from')
def test_init_from_refine_only_improves_and_a_rerun_resumes_its_own_checkpoint(launched):
  got = launched.get('init_from')
  src_rows, w = got['src_rows'], got['workdir']
  assert {x['phase'] for x in src_rows} == {'augmented'} and src_rows[-1]['step'] == BOUNDARY
  assert max(got['src_steps']) == BOUNDARY
  first, rerun = got['first'], got['rerun']
  assert re.search(rf'initialised parameters from {re.escape(got["src"])} \(step {BOUNDARY}\b', first.stderr), \
      first.tail()
  assert resumed_from(first.stderr) is None
  # The source is gone by now: a re-run that consulted init_from before its own checkpoint would fail.
  assert rerun.rc == 0, rerun.tail()
  assert resumed_from(rerun.stderr) == 8, rerun.tail()
  assert 'initialised parameters' not in rerun.stderr
  rows = read_rows(w)
  assert [x['step'] for x in rows] == [11, 22] and {x['phase'] for x in rows} == {'refine'}, rows
  assert all(x['lr'] == pytest.approx(0.01) for x in rows)
  # Refinement lowers the clean training loss of the source model at the end of its augmented phase. (Not
  # necessarily by the first eval: 11 steps after the switch from Mixup it was seen slightly above the source's,
  # 1.066 vs 1.004, and well below at the end, 0.813.)
  assert rows[-1]['train_clean_loss'] < src_rows[-1]['train_clean_loss'], (rows, src_rows[-1])
  assert set(read_summary(w)['phases']) == {'refine'}
