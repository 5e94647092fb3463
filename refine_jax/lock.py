"""One live run per workdir: the workdir lock, `WORKDIR/.lock` (`workdir.LOCK`).

Two runs writing one workdir interleave their metrics.jsonl rows, train the same steps twice and leave a summary
that a later re-run keeps (issue 25). So `main` and `fork` take their workdir's lock before they write anything
there (after the config is validated and the data checked), and give it back however they end: done, bad input
(exit 2), preempted (SIGTERM / SIGINT, exit 3), diverged (exit 4), an exception. A second run is refused at once:
exit 2, one `error:` line naming the holder (host, pid, start time) and what to do if it is known to be dead.

The lock file holds one JSON record:

    host, boot_id, pid_ns, pid, pid_start   the holder: its machine (host name, kernel boot id, pid namespace),
                                            its pid, and the start time the kernel gives that process
                                            (/proc/<pid>/stat), which tells the holder from a later process
                                            that was given the same pid
    token                                   random, the holder's own: it writes and removes only a lock that
                                            still holds its token
    started, heartbeat                      wall-clock seconds (time.time()): when it was taken, last refreshed

The holder refreshes `heartbeat` every HEARTBEAT_S seconds from a daemon thread. A lock is stale, and is taken
over with a warning, when its holder is dead:
  * judged on the holder's own machine (same host name, boot id and pid namespace): its pid is gone, a zombie, or
    a process started at another time (a SIGKILLed run: known at once);
  * judged anywhere else (another node on a shared filesystem; any GCS workdir used from two machines): its
    heartbeat is more than STALE_S seconds old (a lost node: known STALE_S after its last heartbeat).

Taking it:
  * no lock: on a local path (a local disk or an NFS mount) the record goes to a temporary file that is then
    hard-linked to the lock's name, which fails if the name exists (link is atomic on local filesystems and is
    NFS's own lock-file recipe; where link is unsupported the remote rule below applies). GCS through etils.epath
    has no conditional create (no if-generation-match): the record is written over whatever is there, and after
    SETTLE_S seconds read again; the run proceeds only if its token is still there. Two runs that both found no
    lock both write; the last write wins and the other run reads the winner's record and is refused.
  * a stale lock: read again just before (unchanged since judged), overwritten, read again after SETTLE_S, as
    above: of several runs taking over one stale lock, the last writer wins.

Failure modes (what the lock cannot promise):
  * Last-writer-wins is safe only if every write lands within SETTLE_S of the read that decided it: a write call
    that takes longer than SETTLE_S (5 s: a stalled object store or NFS server) or a process suspended between its
    read and its write can let two runs both proceed (on GCS when both start on a workdir without a lock, anywhere
    when both take over one stale lock). The loser's next heartbeat then finds another token and stops it.
  * A holder that is alive but cannot refresh its heartbeat for STALE_S seconds (filesystem or network
    unreachable, process or VM frozen, SIGSTOP) looks dead from other machines and may be taken over. When it
    resumes, its next heartbeat (within HEARTBEAT_S) finds another token: it stops at once (exit 1, no save), but
    whatever it wrote in between is written beside the new run.
  * The heartbeat rule compares the holder's wall clock with the reader's: it assumes clocks agree (NTP) within
    far less than STALE_S. A holder clock behind by more than that looks dead; one ahead delays its takeover.
  * After a lost node, a new run elsewhere (a requeued job) is refused until STALE_S after the node's last
    heartbeat; the refusal says so. A user who knows the holder is dead deletes the lock file.
  * A lock file deleted by hand while its run lives: another run may start at once; the first stops at its next
    heartbeat (as above).
  * Without /proc (not Linux) the holder's liveness on its own machine cannot be read: every lock is judged by
    its heartbeat, so a killed run's lock blocks re-runs for STALE_S.
  * NFS caches file attributes: another node reads a heartbeat up to the mount's attribute-cache time (seconds)
    late, far less than STALE_S. On NFS the exclusive create is as safe as the server's link (atomic there, as
    on other POSIX filesystems such as Lustre and GPFS); a filesystem without hard links gets the GCS rule.
  * Only this program's training commands honour the lock; report, analyze and export read a workdir without it.

Only process 0 of a multi-process run takes the lock (its processes share the workdir and the run); every
process learns the outcome from process 0 (a broadcast), so all of them exit 2 together when it is refused. Within
one process the lock is re-entrant: `fork` takes it before it copies the parent's checkpoint, and the training
that follows takes it again without waiting for itself.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from typing import Optional

from absl import logging
from etils import epath

from refine_jax import paths
from refine_jax import workdir as workdir_lib
from refine_jax.errors import BadInput

HEARTBEAT_S = 30.0  # how often the holder refreshes its heartbeat
STALE_S = 180.0     # a heartbeat older than this (6 missed refreshes) is a dead holder's, judged from elsewhere
SETTLE_S = 5.0      # how long a write must stand before the writer trusts it (no conditional write on GCS)
_ATTEMPTS = 4       # judge / take rounds before giving up (each round lost to another run that took it)
LOST_EXIT = 1       # exit code of a holder that finds its lock taken by another run


class Busy(BadInput):
  """The workdir's lock is held by a live run, or is not a lock record (exit 2)."""


# --------------------------------------------------------------------------- who holds it


def _proc_start(pid: int) -> Optional[int]:
  """The start time (clock ticks after boot) of live process `pid` from /proc; None if gone, a zombie, or no
  /proc."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      rest = f.read().rsplit(')', 1)[1].split()  # after the command name, which may hold spaces and ')'
  except (OSError, IndexError):
    return None
  return None if rest[0] in ('Z', 'X') else int(rest[19])  # fields 3 (state) and 22 (starttime) of proc(5)


def _read_first_line(p: str) -> Optional[str]:
  try:
    with open(p) as f:
      return f.read().strip() or None
  except OSError:
    return None


def _machine() -> dict:
  """This machine, as far as pids mean the same process on it: host name, boot id, pid namespace."""
  try:
    ns = os.readlink('/proc/self/ns/pid')
  except OSError:
    ns = None
  return {'host': socket.gethostname(), 'boot_id': _read_first_line('/proc/sys/kernel/random/boot_id'),
          'pid_ns': ns}


def record(token: str, started: float) -> dict:
  """This process's lock record."""
  pid = os.getpid()
  return {**_machine(), 'pid': pid, 'pid_start': _proc_start(pid), 'token': token, 'started': started,
          'heartbeat': time.time()}


def stale_reason(holder: dict, now: float) -> Optional[str]:
  """Why the holder of this record is dead (the lock may be taken over), or None while it may be alive."""
  here = _machine()
  if here['boot_id'] and here['pid_ns'] and holder.get('pid_start') is not None and all(
      holder.get(k) == here[k] for k in ('host', 'boot_id', 'pid_ns')):
    start = _proc_start(holder['pid'])
    if start is None:
      return f'its process {holder["pid"]} on this host is gone'
    if start != holder['pid_start']:
      return f'pid {holder["pid"]} on this host is now another process (started at another time)'
    return None
  age = now - holder['heartbeat']
  if age > STALE_S:
    return f'its heartbeat is {age:.0f} s old (dead after {STALE_S:.0f} s)'
  return None


def _utc(t: float) -> str:
  return time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(t))


def _busy(workdir: str, p: epath.Path, holder: dict, now: float) -> Busy:
  return Busy(f'--workdir: {workdir} is in use by another run: host {holder["host"]}, pid {holder["pid"]}, started '
              f'{_utc(holder["started"])} (heartbeat {now - holder["heartbeat"]:.0f} s ago). One live run per '
              f'workdir: wait for it to end, or use another --workdir. If you know that run is dead, delete {p} '
              f'and re-run (done by itself once its process is gone, seen from its host, or its heartbeat is '
              f'{STALE_S:.0f} s old).')


# --------------------------------------------------------------------------- the file


_KEYS = ('host', 'pid', 'token', 'started', 'heartbeat')


def _parse(text: str) -> dict:
  """The record in a lock file; ValueError if it is not one."""
  holder = json.loads(text)
  if not isinstance(holder, dict) or any(k not in holder for k in _KEYS):
    raise ValueError(f'lacks {", ".join(k for k in _KEYS if not isinstance(holder, dict) or k not in holder)}')
  return holder


def _read(p: epath.Path) -> Optional[str]:
  try:
    return p.read_text() if p.exists() else None
  except FileNotFoundError:  # removed between the two calls
    return None


def _token(text: Optional[str]) -> Optional[str]:
  """The token of a lock file's text; None for no lock or not a record."""
  try:
    return _parse(text)['token'] if text is not None else None
  except ValueError:
    return None


def _put(p: epath.Path, rec: dict, *, exclusive: bool) -> str:
  """Writes `rec` to the lock through a temporary file named by its token (pids repeat across hosts). With
  `exclusive` on a local path, only if no lock exists (a hard link): 'created', or 'exists' if one does; else
  (GCS, or no hard links on this filesystem) over whatever is there: 'written', which the writer must settle."""
  tmp = p.parent / f'{p.name}.{rec["token"]}'
  tmp.write_text(workdir_lib.dumps(rec) + '\n')
  try:
    if exclusive and paths.is_local(os.fspath(p)):
      try:
        os.link(tmp, p)
        return 'created'
      except FileExistsError:
        return 'exists'
      except OSError:  # a filesystem without hard links: the rule of GCS
        pass
    tmp.replace(p)
    return 'written'
  finally:
    if tmp.exists():
      tmp.unlink()


# --------------------------------------------------------------------------- taking and giving back


class Lock:
  """A workdir's lock, held by this process: the heartbeat thread and `release`."""

  def __init__(self, workdir: str, rec: dict):
    self.workdir, self.rec = workdir, rec
    self.path = epath.Path(workdir_lib.path(workdir, workdir_lib.LOCK))
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, name='workdir-lock-heartbeat', daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_S):
      try:
        text = _read(self.path)
        holder = _parse(text) if text is not None else None
      except (OSError, ValueError) as e:  # unreadable for now: try again at the next beat
        logging.warning('workdir lock %s: cannot read it to refresh the heartbeat (%s)', self.path, e)
        continue
      if holder is None or holder['token'] != self.rec['token']:
        if not self._stop.is_set():
          _stop_process(self.workdir, self.path, holder)
        return
      try:
        _put(self.path, {**self.rec, 'heartbeat': time.time()}, exclusive=False)
      except OSError as e:
        logging.warning('workdir lock %s: cannot refresh the heartbeat (%s)', self.path, e)

  def release(self) -> None:
    """Stops the heartbeat and removes the lock if it still holds this process's token."""
    self._stop.set()
    self._thread.join()
    try:
      if _token(_read(self.path)) == self.rec['token']:
        self.path.unlink()
      else:
        logging.warning('workdir lock %s: no longer this run\'s at its end; left as it is', self.path)
    except OSError as e:
      logging.warning('workdir lock %s: could not be removed (%s); the next run will find it stale', self.path, e)


def _stop_process(workdir: str, p: epath.Path, holder: Optional[dict]) -> None:
  """This run's lock is gone or another run's: stop at once, writing nothing more (no checkpoint: the other run
  owns the workdir now). Two runs writing one workdir is what the lock is for."""
  who = (f'host {holder["host"]}, pid {holder["pid"]}, started {_utc(holder["started"])}' if holder else
         'the lock file was deleted')
  print(f'error: lost the workdir lock {p} ({who}): another run may be writing {workdir}; this run stops now '
        f'without saving (exit {LOST_EXIT}).', file=sys.stderr, flush=True)
  logging.flush()
  os._exit(LOST_EXIT)


def acquire(workdir: str) -> Lock:
  """Takes `workdir`'s lock (the rules above) for this process; raises Busy naming the holder if a live run
  holds it. The workdir must exist."""
  p = epath.Path(workdir_lib.path(workdir, workdir_lib.LOCK))
  mine = record(secrets.token_hex(16), time.time())
  for _ in range(_ATTEMPTS):
    text = _read(p)
    if text is None:
      done = _put(p, mine, exclusive=True)
      if done == 'created':
        return Lock(workdir, mine)
      if done == 'exists':
        continue  # created by another run meanwhile: judge it
    else:
      try:
        holder = _parse(text)
      except ValueError as e:
        raise Busy(f'--workdir: {workdir} holds {p}, which is not a lock record ({e}); if no run uses this '
                   'workdir, delete it and re-run') from None
      if holder['token'] == mine['token']:  # ours after all (NFS: a retried link reports EEXIST)
        return Lock(workdir, mine)
      why = stale_reason(holder, time.time())
      if why is None:
        raise _busy(workdir, p, holder, time.time())
      if _read(p) != text:
        continue  # changed since judged: judge again
      logging.warning('workdir lock %s: taking over the lock of host %s, pid %d, started %s: %s', p,
                      holder['host'], holder['pid'], _utc(holder['started']), why)
      _put(p, {**mine, 'heartbeat': time.time()}, exclusive=False)
    time.sleep(SETTLE_S)  # last writer wins: proceed only if the lock still holds this run's token
    if _token(_read(p)) == mine['token']:
      return Lock(workdir, mine)
  text = _read(p)
  try:
    holder = _parse(text) if text is not None else None
  except ValueError:
    holder = None
  if holder is None:
    raise Busy(f'--workdir: could not take the lock {p} in {_ATTEMPTS} tries: other runs keep taking it')
  raise _busy(workdir, p, holder, time.time())


# --------------------------------------------------------------------------- the job's view


_depth: dict[str, int] = {}
_held: dict[str, Lock] = {}


class Held:
  """This job's hold on a workdir's lock (`take`); `release()` or leaving a `with` block gives it back once."""

  def __init__(self, key: str):
    self._key, self._released = key, False

  def release(self) -> None:
    if self._released:
      return
    self._released = True
    _depth[self._key] -= 1
    if _depth[self._key] == 0:
      del _depth[self._key]
      lock = _held.pop(self._key, None)
      if lock is not None:
        lock.release()

  def __enter__(self) -> 'Held':
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def take(workdir: str) -> Held:
  """The job's hold on `workdir`'s lock: process 0 takes it (`acquire`), every process learns whether it did;
  raises Busy on every process if not. Creates the workdir if needed (the lock is the first thing a run writes
  there). Re-entrant within the process (a nested take shares the hold)."""
  import jax
  key = workdir_lib.key(workdir)
  if _depth.get(key):
    _depth[key] += 1
    return Held(key)
  workdir_lib.make(workdir)
  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = acquire(workdir)
    except Exception as e:  # noqa: BLE001 - every process must hear of it before process 0 raises
      error = e
  if jax.process_count() > 1:
    import numpy as np
    from jax.experimental import multihost_utils
    ok = bool(multihost_utils.broadcast_one_to_all(np.int32(lock is not None)))
    if not ok and error is None:
      error = Busy(f'--workdir: {workdir}: process 0 could not take the workdir lock (its error line says why)')
  if error is not None:
    raise error
  _depth[key] = 1
  if lock is not None:
    _held[key] = lock
  return Held(key)
