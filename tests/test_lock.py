"""One live run per workdir (issue 25): the workdir lock (refine_jax/lock.py).

Unit tests of the rules (who is alive, taking over a dead holder, exactly one winner among concurrent takers on a
local disk and on a mocked gs:// bucket, the heartbeat, a lost lock), then the real entry points on a tiny digits
run: a second run on a live workdir exits 2 at once and the first ends as a lone run does (bitwise); SIGTERM
gives the lock back; a SIGKILLed run's lock does not block the re-run; a foreign host's lock blocks while its
heartbeat is fresh and is taken over once it is old, rewriting nothing of a finished run; fork and a two-process
run are refused the same way.

Robust on a loaded 2-core machine: every wait polls for a file or a process state with a generous deadline; the
holder whose liveness is tested is frozen (SIGSTOP) rather than raced against.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np
import pytest

from refine_jax import lock, workdir as workdir_lib
from tests.conftest import ROOT, env_for, read_rows, read_summary

CONFIG = os.path.join(ROOT, 'configs', 'digits_demo.py')
# 256 training digits at batch 32: 8 steps an epoch; 3 Mixup + 1 refinement epochs = 32 steps, a checkpoint every 4.
ARGS = ['--config.train_split=train[:256]', '--config.batch_size=32', '--config.diag_examples=64',
        '--config.phases.augmented.epochs=3', '--config.phases.refine.epochs=1', '--config.eval_every_epochs=1',
        '--config.phases.augmented.lr.boundaries_epochs=()', '--config.log_every_steps=8',
        '--config.checkpoint_every_steps=4']
TOTAL = 32
TIMEOUT_S = 400
POLL_S = 0.02


# --------------------------------------------------------------------------- helpers


def record(**kw) -> dict:
  """A lock record of this process, changed by `kw`."""
  return {**lock.record('t' * 32, time.time()), **kw}


def write_lock(w, rec: dict) -> str:
  p = os.path.join(w, workdir_lib.LOCK)
  with open(p, 'w') as f:
    json.dump(rec, f)
  return p


def read_lock(w) -> Optional[dict]:
  p = os.path.join(w, workdir_lib.LOCK)
  return json.load(open(p)) if os.path.exists(p) else None


def foreign(age_s: float) -> dict:
  """The record of a run on another machine whose last heartbeat was `age_s` seconds ago."""
  now = time.time()
  return {'host': 'node-elsewhere-17', 'boot_id': 'another-boot', 'pid_ns': 'pid:[1]', 'pid': 4242,
          'pid_start': 99, 'token': 'f' * 32, 'started': now - age_s - 3600, 'heartbeat': now - age_s}


def dead_pid() -> int:
  p = subprocess.Popen([sys.executable, '-c', 'pass'])
  p.wait()
  return p.pid


def poll(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT_S, alive: Callable[[], bool] = lambda: True):
  deadline = time.monotonic() + timeout
  while not cond():
    assert alive(), f'gave up waiting for {what}: the process ended'
    assert time.monotonic() < deadline, f'{what}: not within {timeout}s'
    time.sleep(POLL_S)


@pytest.fixture
def quick(monkeypatch):
  """Short settle and heartbeat intervals for in-process tests (the rules do not depend on their size)."""
  monkeypatch.setattr(lock, 'SETTLE_S', 0.2)
  monkeypatch.setattr(lock, 'HEARTBEAT_S', 0.05)


# --------------------------------------------------------------------------- the stale rules


def test_process_start_time_is_the_kernels():
  """/proc/<pid>/stat field 22, checked against psutil's create time (boot time + ticks / CLK_TCK)."""
  psutil = pytest.importorskip('psutil')
  if not os.path.exists('/proc/self/stat'):
    pytest.skip('no /proc')
  child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
  try:
    for pid in (os.getpid(), child.pid):
      ticks = lock._proc_start(pid)
      assert ticks is not None
      want = psutil.Process(pid).create_time()
      assert abs(psutil.boot_time() + ticks / os.sysconf('SC_CLK_TCK') - want) < 0.05, pid
    assert lock._proc_start(child.pid) > lock._proc_start(os.getpid())
  finally:
    child.kill()
    child.wait()


def test_stale_rules_on_this_host():
  if not os.path.exists('/proc/self/stat'):
    pytest.skip('no /proc: every lock is judged by its heartbeat here')
  now, me = time.time(), record()
  assert lock.stale_reason(me, now) is None  # this process: alive
  assert lock.stale_reason({**me, 'heartbeat': now - 10 * lock.STALE_S}, now) is None  # alive whatever its heartbeat
  why = lock.stale_reason({**me, 'pid_start': me['pid_start'] - 1}, now)  # the pid, but a later process
  assert why and 'another process' in why, why
  why = lock.stale_reason({**me, 'pid': dead_pid()}, now)
  assert why and 'gone' in why, why
  # A SIGKILLed process its parent has not reaped yet (a zombie) is dead too.
  child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
  start = lock._proc_start(child.pid)
  os.kill(child.pid, signal.SIGKILL)
  poll(lambda: open(f'/proc/{child.pid}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z', 'the zombie')
  why = lock.stale_reason({**me, 'pid': child.pid, 'pid_start': start}, now)
  child.wait()
  assert why and 'gone' in why, why


@pytest.mark.parametrize('elsewhere', [
    {'host': 'node-elsewhere-17'},
    {'boot_id': 'before-a-reboot'},   # same host name, another boot: pids mean nothing across boots
    {'pid_ns': 'pid:[123]'},          # a container with its own pid namespace
    {'pid_start': None},              # written where /proc could not be read
])
def test_stale_rules_elsewhere_go_by_the_heartbeat(elsewhere):
  """Off the holder's machine its pid says nothing (here: our own live pid, a dead one): only the age of its
  heartbeat counts, against STALE_S."""
  now = time.time()
  for pid in (os.getpid(), dead_pid()):
    rec = record(pid=pid, **elsewhere)
    assert lock.stale_reason({**rec, 'heartbeat': now - lock.STALE_S + 5}, now) is None
    why = lock.stale_reason({**rec, 'heartbeat': now - lock.STALE_S - 5}, now)
    assert why and 'heartbeat' in why, why


# --------------------------------------------------------------------------- taking it, in this process


def test_a_live_holder_refuses_naming_host_pid_and_start(tmp_path, quick):
  held = lock.acquire(str(tmp_path))
  try:
    rec = read_lock(tmp_path)
    assert rec['pid'] == os.getpid() and rec['token'] == held.rec['token']
    with pytest.raises(lock.Busy) as e:
      lock.acquire(str(tmp_path))
    msg = str(e.value)
    assert msg.startswith('--workdir: ') and f'pid {os.getpid()}' in msg and f'host {rec["host"]}' in msg
    assert time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(rec['started'])) in msg
    assert os.path.join(str(tmp_path), workdir_lib.LOCK) in msg and 'delete' in msg
    assert read_lock(tmp_path)['token'] == held.rec['token']  # the refused taker changed nothing
  finally:
    held.release()
  assert os.listdir(tmp_path) == []  # released: no lock, no temporary file


def test_a_fresh_foreign_lock_refuses_an_old_one_is_taken_over(tmp_path, quick):
  w = str(tmp_path)
  write_lock(w, foreign(age_s=5))
  with pytest.raises(lock.Busy, match=r'host node-elsewhere-17, pid 4242, started .* \(heartbeat 5 s ago\)'):
    lock.acquire(w)
  assert read_lock(w)['token'] == 'f' * 32
  write_lock(w, foreign(age_s=lock.STALE_S + 60))
  held = lock.acquire(w)
  assert read_lock(w)['token'] == held.rec['token'] and read_lock(w)['pid'] == os.getpid()
  held.release()
  assert os.listdir(w) == []


def test_a_dead_holders_lock_on_this_host_is_taken_over(tmp_path, quick):
  if not os.path.exists('/proc/self/stat'):
    pytest.skip('no /proc')
  w = str(tmp_path)
  write_lock(w, record(pid=dead_pid(), token='d' * 32))  # a fresh heartbeat: the pid alone says it is dead
  held = lock.acquire(w)
  assert read_lock(w)['token'] == held.rec['token']
  held.release()


def test_a_file_that_is_no_lock_record_refuses(tmp_path, quick):
  for text in ('', 'not json', '{"host": "h"}'):
    (tmp_path / workdir_lib.LOCK).write_text(text)
    with pytest.raises(lock.Busy, match='not a lock record'):
      lock.acquire(str(tmp_path))
    assert (tmp_path / workdir_lib.LOCK).read_text() == text


def test_the_heartbeat_refreshes_and_release_leaves_another_runs_lock(tmp_path, quick):
  w = str(tmp_path)
  held = lock.acquire(w)
  first = read_lock(w)
  poll(lambda: (read_lock(w) or first)['heartbeat'] > first['heartbeat'], 'a heartbeat')
  now = read_lock(w)
  assert {k: v for k, v in now.items() if k != 'heartbeat'} == {k: v for k, v in first.items() if k != 'heartbeat'}
  held._stop.set()  # stop beating, then another run writes over it: release must not remove that run's lock
  held._thread.join()
  write_lock(w, foreign(age_s=0))
  held.release()
  assert read_lock(w)['token'] == 'f' * 32


@pytest.mark.parametrize('how', ['taken', 'deleted'])
def test_a_holder_that_lost_its_lock_stops(tmp_path, quick, monkeypatch, how):
  """Its lock deleted by hand or taken over (it looked dead from elsewhere): the next heartbeat stops the run
  (here recorded instead of exiting the test process)."""
  stopped = []
  monkeypatch.setattr(lock, '_stop_process', lambda w, p, holder: stopped.append(holder))
  w = str(tmp_path)
  held = lock.acquire(w)
  if how == 'taken':
    write_lock(w, foreign(age_s=0))
  else:
    os.remove(os.path.join(w, workdir_lib.LOCK))
  poll(lambda: stopped, 'the holder noticing')
  assert len(stopped) == 1 and (stopped[0]['token'] == 'f' * 32 if how == 'taken' else stopped[0] is None)
  assert (read_lock(w) or {}).get('token') == ('f' * 32 if how == 'taken' else None)  # not re-stamped


def test_the_lost_lock_exit_is_one_line_and_exit_1(tmp_path):
  """The real reaction, in a child process: one line, exit 1 at once (no save, no traceback)."""
  w = str(tmp_path)
  code = (f'import json, time\nfrom refine_jax import lock\nlock.HEARTBEAT_S = 0.05\nl = lock.acquire({w!r})\n'
          f'json.dump({foreign(0)!r}, open({os.path.join(w, workdir_lib.LOCK)!r}, "w"))\ntime.sleep(60)\n'
          'print("still running")\n')
  p = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env_for(), capture_output=True, text=True,
                     timeout=120)
  assert p.returncode == lock.LOST_EXIT and 'still running' not in p.stdout, p.stderr
  lines = [l for l in p.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'lost the workdir lock' in lines[0] and 'host node-elsewhere-17, pid 4242' in lines[0]


def test_take_is_reentrant_within_a_process(tmp_path, quick):
  w = str(tmp_path / 'new')  # take creates the workdir
  outer = lock.take(w)
  token = read_lock(w)['token']
  with lock.take(w):  # fork's hold, then the training's: no waiting for itself
    assert read_lock(w)['token'] == token
  assert read_lock(w)['token'] == token
  outer.release()
  outer.release()  # once only
  assert os.listdir(w) == []
  with pytest.raises(lock.Busy):  # and a live other holder still refuses through take
    write_lock(w, foreign(age_s=0))
    lock.take(w)


# --------------------------------------------------------------------------- concurrent takers


TAKER = '''
import os, sys, time
from refine_jax import lock
lock.SETTLE_S = 2.0
w, start, release = sys.argv[1], float(sys.argv[2]), sys.argv[3]
time.sleep(max(0.0, start - time.time()))
try:
  held = lock.acquire(w)
except lock.Busy as e:
  print('busy', e)
  sys.exit(2)
print('won', os.getpid(), flush=True)
while not os.path.exists(release):
  time.sleep(0.02)
held.release()
'''


@pytest.mark.parametrize('start', ['no lock', 'a dead holder'])
def test_exactly_one_of_concurrent_takers_wins(tmp_path, start):
  """Four processes released at the same instant on a local workdir: with no lock there (hard-link create) or a
  dead process's lock (overwrite, settle, re-read), exactly one holds it and the others are refused naming it."""
  if start == 'a dead holder' and not os.path.exists('/proc/self/stat'):
    pytest.skip('no /proc')
  w = str(tmp_path / 'w')
  os.mkdir(w)
  if start == 'a dead holder':
    write_lock(w, record(pid=dead_pid(), token='d' * 32))
  release = str(tmp_path / 'release')
  t0 = time.time() + 8  # every child imported and waiting by then (a loaded machine: generous)
  procs = [subprocess.Popen([sys.executable, '-c', TAKER, w, str(t0), release], cwd=ROOT, env=env_for(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
  try:
    out = {}
    poll(lambda: sum(p.poll() is not None for p in procs) >= 3, 'three takers refused', timeout=120)
    for p in procs:
      if p.poll() is not None:
        out[p.pid] = (p.returncode, p.stdout.read())
    winner = [p for p in procs if p.poll() is None]
    assert len(winner) == 1, out
    assert read_lock(w)['pid'] == winner[0].pid
    for rc, text in out.values():
      assert rc == 2 and f'pid {winner[0].pid},' in text, out
  finally:
    open(release, 'w').close()
    for p in procs:
      p.wait(60)
  assert winner[0].returncode == 0
  assert sorted(os.listdir(w)) == []


# --------------------------------------------------------------------------- a gs:// workdir (epath's mock)


def test_on_gcs_the_lock_is_taken_refused_taken_over_and_released(bucket, quick, monkeypatch):
  root, _ = bucket  # gs://bucket mapped onto a local folder (conftest)
  w = 'gs://bucket/runs/a'
  links = []
  real_link = os.link
  monkeypatch.setattr(os, 'link', lambda *a: links.append(a) or real_link(*a))
  held = lock.take(w)  # creates the workdir, writes the record (no conditional create: write, settle, re-read)
  local = root / 'runs/a'
  assert json.loads((local / workdir_lib.LOCK).read_text())['pid'] == os.getpid()
  assert not links, 'a gs:// path went through a local hard link'
  with pytest.raises(lock.Busy, match=f'pid {os.getpid()}'):
    lock.acquire(w)
  held.release()
  assert os.listdir(local) == []
  (local / workdir_lib.LOCK).write_text(json.dumps(foreign(age_s=5)))
  with pytest.raises(lock.Busy, match='node-elsewhere-17'):
    lock.acquire(w)
  (local / workdir_lib.LOCK).write_text(json.dumps(foreign(age_s=lock.STALE_S + 1)))
  got = lock.acquire(w)
  assert json.loads((local / workdir_lib.LOCK).read_text())['token'] == got.rec['token']
  got.release()
  assert os.listdir(local) == []


def test_on_gcs_of_concurrent_takers_the_last_writer_wins(bucket, monkeypatch):
  root, _ = bucket
  """No conditional create: four takers that all found no lock all write it; after the settle delay each reads
  it again and only the last writer goes on; the others are refused naming it."""
  monkeypatch.setattr(lock, 'SETTLE_S', 2.0)
  w = 'gs://bucket/runs/b'
  workdir_lib.make(w)
  barrier, results = threading.Barrier(4), []

  def taker():
    barrier.wait()
    try:
      results.append(lock.acquire(w))
    except lock.Busy as e:
      results.append(e)
  threads = [threading.Thread(target=taker) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  won = [r for r in results if isinstance(r, lock.Lock)]
  assert len(results) == 4 and len(won) == 1, results
  assert json.loads((root / 'runs/b' / workdir_lib.LOCK).read_text())['token'] == won[0].rec['token']
  won[0].release()


# --------------------------------------------------------------------------- the real entry points


class Proc:
  """A command of the package in the background; stdout / stderr to files (an unread pipe could block it)."""

  def __init__(self, env: dict, module: str, *argv: str):
    base = os.path.join(env['_LOGS'], f'{module}.{time.monotonic_ns()}')
    self.out, self.err = base + '.out', base + '.err'
    with open(self.out, 'w') as o, open(self.err, 'w') as e:
      self.proc = subprocess.Popen([sys.executable, '-m', f'refine_jax.{module}', *argv], cwd=ROOT,
                                   env={k: v for k, v in env.items() if k != '_LOGS'}, stdout=o, stderr=e)
    self.pid = self.proc.pid

  def wait(self, timeout: float = TIMEOUT_S) -> int:
    try:
      return self.proc.wait(timeout)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      self.proc.wait()
      raise AssertionError(f'did not end in {timeout}s\n{self.tail()}')

  def alive(self) -> bool:
    return self.proc.poll() is None

  @property
  def stderr(self) -> str:
    return open(self.err).read()

  @property
  def stdout(self) -> str:
    return open(self.out).read()

  def tail(self) -> str:
    return f'exit {self.proc.returncode}\nSTDOUT:\n{self.stdout[-2000:]}\nSTDERR:\n{self.stderr[-5000:]}'


@pytest.fixture(scope='module')
def env(tmp_path_factory):
  e = env_for()
  e.update(JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp('xla_cache')),
           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0', JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
           _LOGS=str(tmp_path_factory.mktemp('logs')))
  return e


def main(env, w: str, *extra: str) -> Proc:
  return Proc(env, 'main', f'--config={CONFIG}', f'--workdir={w}', *ARGS, *extra)


@pytest.fixture(scope='module')
def lone(env, tmp_path_factory) -> dict:
  """The run alone on its workdir: what every run that a lock protected must reproduce."""
  w = str(tmp_path_factory.mktemp('lone') / 'w')
  r = main(env, w)
  assert r.wait() == 0, r.tail()
  return {'workdir': w, 'rows': read_rows(w), 'summary': read_summary(w), 'state': final_state(w),
          'stdout': r.stdout}


def final_state(w: str) -> dict:
  """{key path: array} of the checkpoint at the last step, with its record."""
  import jax
  from refine_jax import checkpoint
  with checkpoint.Checkpoints(os.path.join(w, 'checkpoints'), read_only=True) as c:
    state, meta = c.restore_raw(TOTAL)
  flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(state)[0]}
  return {'meta': meta, **flat}


def assert_as_lone(w: str, lone: dict) -> None:
  assert read_rows(w) == lone['rows'], 'metrics.jsonl differs from the lone run'
  assert read_summary(w) == lone['summary']
  got = final_state(w)
  assert got['meta'] == lone['state']['meta'] and sorted(got) == sorted(lone['state'])
  bad = [k for k in got if k != 'meta' and got[k].tobytes() != lone['state'][k].tobytes()]
  assert not bad, f'{len(bad)} arrays of the final checkpoint differ from the lone run: {bad[:5]}'


def snapshot(w: str) -> dict:
  """Every file under `w`: size, mtime and content hash."""
  out = {}
  for root, _, files in os.walk(w):
    for f in files:
      p = os.path.join(root, f)
      st = os.stat(p)
      out[os.path.relpath(p, w)] = (st.st_size, st.st_mtime_ns, hashlib.sha1(open(p, 'rb').read()).hexdigest())
  return out


def holds(w: str, pid: int) -> bool:
  try:
    return (read_lock(w) or {}).get('pid') == pid
  except ValueError:
    return False


def error_line(r: Proc) -> str:
  lines = [l for l in r.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'Traceback' not in r.stderr, r.tail()
  return lines[0]


def test_a_second_run_on_a_live_workdir_exits_2_at_once_and_the_first_ends_as_a_lone_run(env, lone, tmp_path):
  """The issue's case. The second starts once the first holds the lock; the first is then frozen (SIGSTOP), so
  the second's refusal cannot come from waiting for it to end. Today's code let both run (exit 0 both, 16
  interleaved rows)."""
  w = str(tmp_path / 'w')
  first = main(env, w)
  try:
    poll(lambda: holds(w, first.pid), 'the first run holding the lock', alive=first.alive)
    os.kill(first.pid, signal.SIGSTOP)
    before = snapshot(w)
    second = main(env, w)
    assert second.wait() == 2, second.tail()
    line = error_line(second)
    rec = read_lock(w)
    assert f'{w} is in use by another run: host {rec["host"]}, pid {first.pid}, started ' in line, line
    assert snapshot(w) == before, 'the refused run wrote into the workdir'
    assert 'resumed' not in second.stderr and "phase 'augmented'" not in second.stderr
  finally:
    if first.alive():
      os.kill(first.pid, signal.SIGCONT)
  assert first.wait() == 0, first.tail()
  assert not os.path.exists(os.path.join(w, workdir_lib.LOCK)), 'the lock outlived its run'
  assert_as_lone(w, lone)


def test_sigterm_gives_the_lock_back_and_a_sigkilled_runs_lock_does_not_block_the_rerun(env, lone, tmp_path):
  w = str(tmp_path / 'w')
  ckpts = os.path.join(w, 'checkpoints')
  r = main(env, w)
  poll(lambda: holds(w, r.pid) and os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts)),
       'a checkpoint', alive=r.alive)
  r.proc.send_signal(signal.SIGTERM)
  assert r.wait() == 3, r.tail()
  assert not os.path.exists(os.path.join(w, workdir_lib.LOCK)), 'SIGTERM (exit 3) left the lock behind'

  killed = main(env, w)
  poll(lambda: holds(w, killed.pid), 'the re-run holding the lock', alive=killed.alive)
  killed.proc.kill()
  killed.wait()
  assert read_lock(w)['pid'] == killed.pid  # SIGKILL: nothing gave it back

  rerun = main(env, w)
  assert rerun.wait() == 0, rerun.tail()
  assert re.search(rf'taking over the lock of host \S+, pid {killed.pid}, .*process {killed.pid} on this host is '
                   'gone', rerun.stderr), rerun.tail()
  assert re.search(r'resumed .* at step \d+', rerun.stderr), rerun.tail()
  assert not os.path.exists(os.path.join(w, workdir_lib.LOCK))
  assert_as_lone(w, lone)


def test_a_foreign_hosts_lock_refuses_while_fresh_then_is_taken_over_rewriting_nothing(env, lone, tmp_path):
  """On a finished run's workdir: a live run on another node (fresh heartbeat) refuses the re-run, nothing
  written; once its heartbeat is older than STALE_S the re-run takes the lock over, trains nothing, reports the
  same summary and leaves every file byte for byte and mtime as it was (issue 26); the lock is gone after."""
  w = str(tmp_path / 'w')
  shutil.copytree(lone['workdir'], w)  # copy2: mtimes kept
  before = snapshot(w)
  write_lock(w, foreign(age_s=10))
  locked = snapshot(w)
  r = main(env, w)
  assert r.wait() == 2, r.tail()
  line = error_line(r)
  assert re.search(r'host node-elsewhere-17, pid 4242, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC', line), line
  assert 'heartbeat 1' in line and os.path.join(w, workdir_lib.LOCK) in line and len(line) < 600, line
  assert snapshot(w) == locked

  write_lock(w, foreign(age_s=lock.STALE_S + 60))
  r = main(env, w)
  assert r.wait() == 0, r.tail()
  assert 'taking over the lock of host node-elsewhere-17, pid 4242' in r.stderr, r.tail()
  assert json.loads(r.stdout) == lone['summary'] == read_summary(w)
  assert snapshot(w) == before


def test_fork_into_a_held_workdir_is_refused_before_copying(env, lone, tmp_path):
  w = str(tmp_path / 'fork')
  os.mkdir(w)
  write_lock(w, foreign(age_s=0))
  before = snapshot(w)
  r = Proc(env, 'fork', f'--config={CONFIG}', f'--from={lone["workdir"]}', '--at_epoch=3', f'--workdir={w}', *ARGS)
  assert r.wait() == 2, r.tail()
  assert 'host node-elsewhere-17, pid 4242' in error_line(r)
  assert snapshot(w) == before and sorted(os.listdir(w)) == [workdir_lib.LOCK]


def test_a_two_process_run_is_refused_on_every_process(env, lone, tmp_path):
  """Process 0 alone reads the lock; the other process learns the refusal from it: both exit 2, nothing written
  (with no agreement process 1 would go on alone into its first collective and hang)."""
  w = str(tmp_path / 'w')
  shutil.copytree(lone['workdir'], w)
  write_lock(w, foreign(age_s=0))
  before = snapshot(w)
  logs = tmp_path / 'logs'
  e = {k: v for k, v in env.items() if k != '_LOGS'}
  e.update(LOG_DIR=str(logs), PYTHON=sys.executable)
  p = subprocess.run(['bash', os.path.join(ROOT, 'launch', 'local_multiprocess.sh'), '2', f'--config={CONFIG}',
                      f'--workdir={w}', *ARGS], cwd=ROOT, env=e, capture_output=True, text=True, timeout=TIMEOUT_S)
  assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
  err0 = [l for l in (logs / 'process_0.log').read_text().splitlines() if 'error:' in l]
  err1 = [l for l in (logs / 'process_1.log').read_text().splitlines() if 'error:' in l]
  assert len(err0) == 1 and 'host node-elsewhere-17, pid 4242' in err0[0], err0
  assert len(err1) == 1 and 'process 0 could not take the workdir lock' in err1[0], err1
  assert snapshot(w) == before
