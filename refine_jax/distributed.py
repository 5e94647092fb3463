"""jax.distributed for the commands that train (main, fork): their flags, and initialisation under a multi-process
launch (explicit flags, or Slurm / Open MPI / a TPU pod slice detected from the environment).

Importing this module defines the flags (absl); `initialize()` runs after they are parsed.
"""
import os
import sys

from absl import flags, logging

from refine_jax import cli

_COORD = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-process runs).')
_NPROC = flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-process runs).')
_PID = flags.DEFINE_integer('process_id', None, 'This process index (multi-process runs).')
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed', 'auto', ['auto', 'on', 'off'],
    'jax.distributed: auto = initialise when --coordinator_address/--num_processes/--process_id are given or a '
    'multi-process Slurm step / Open MPI job / GKE TPU slice is detected from the environment; on = always '
    '(jax detects the cluster: Cloud TPU VM pods, Slurm, Open MPI, Kubernetes); off = never.')
_LOCAL_DEVICE_IDS = flags.DEFINE_list(
    'local_device_ids', None, 'Accelerator ids this process uses (e.g. 0,1,2,3). Default: jax\'s choice, which '
    'under Slurm / Open MPI on GPUs is ONE device per process (the local rank); one process per node with all '
    'its GPUs needs the full list (or JAX_LOCAL_DEVICE_IDS).')
_HEARTBEAT = flags.DEFINE_integer(
    'heartbeat_timeout_seconds', 60, 'A process silent for this long is declared dead and every other process '
    'exits with an error (no silent hang when one process dies).')
_INIT_TIMEOUT = flags.DEFINE_integer(
    'initialization_timeout_seconds', 300, 'How long a process waits for all the others to connect to the '
    'coordinator before failing.')
_SHUTDOWN_TIMEOUT = flags.DEFINE_integer(
    'shutdown_timeout_seconds', 120, 'At exit every process waits (a barrier) for all the others to finish; '
    'after this long it gives up with an error.')


def initialize() -> None:
  """jax.distributed under a multi-process launch: explicit flags, or Slurm / Open MPI / TPU-pod detection.

  Failure is bounded: a process whose heartbeats stop for --heartbeat_timeout_seconds is declared dead by the
  coordinator and every other process is terminated with an error naming it; a process that cannot reach the
  others within --initialization_timeout_seconds fails. At exit jax's atexit hook shuts the client down, which
  is a barrier over all processes (bounded by --shutdown_timeout_seconds), so the processes exit together.
  """
  import jax
  explicit = any(v is not None for v in (_COORD.value, _NPROC.value, _PID.value))
  mode = _DISTRIBUTED.value
  if mode == 'off' or (explicit and _NPROC.value == 1 and not _COORD.value):
    return
  if mode == 'auto' and not explicit and not cli.cluster_env_detected():
    return
  # CPU processes exchange collectives over gloo (TCP). Already the default in recent jax; a user's explicit
  # choice (JAX_CPU_COLLECTIVES_IMPLEMENTATION=mpi) is kept.
  try:
    if getattr(jax.config, 'jax_cpu_collectives_implementation', None) in (None, ''):
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  except AttributeError:  # jax without the option
    pass
  kwargs = dict(initialization_timeout=_INIT_TIMEOUT.value, heartbeat_timeout_seconds=_HEARTBEAT.value,
                shutdown_timeout_seconds=_SHUTDOWN_TIMEOUT.value)
  if _LOCAL_DEVICE_IDS.value:
    kwargs['local_device_ids'] = [int(i) for i in _LOCAL_DEVICE_IDS.value]
  coordinator, nproc, pid = _COORD.value, _NPROC.value, _PID.value
  ompi = cli.open_mpi5_process()
  if ompi is not None:
    # Open MPI 5 (PRRTE) sets no launcher URI: jax 0.10 does not detect it, jax >= 0.12 detects it but bootstraps
    # only through mpi4py. Both get every fact here from Open MPI's environment, so neither needs mpi4py.
    nproc = ompi.size if nproc is None else nproc
    pid = ompi.rank if pid is None else pid
    coordinator = coordinator or os.environ.get('JAX_COORDINATOR_ADDRESS')
    if not coordinator:
      cli.usage_error('--coordinator_address: an Open MPI 5 job names no coordinator; pass --coordinator_address='
                      'HOST:PORT of rank 0 (or set JAX_COORDINATOR_ADDRESS), as launch/slurm_gpu.sbatch does.')
    if 'local_device_ids' not in kwargs and not os.environ.get('JAX_LOCAL_DEVICE_IDS'):
      kwargs['local_device_ids'] = [ompi.local_rank]  # jax's rule under Open MPI: one device per process
  try:
    jax.distributed.initialize(coordinator, nproc, pid, **kwargs)
  except (ValueError, TypeError) as e:  # missing/inconsistent process facts: a usage error
    cli.usage_error(f'cannot initialise jax.distributed: {e}. Pass --coordinator_address, --num_processes and '
                    '--process_id, or launch under Slurm (srun) / Open MPI (mpirun) / a Cloud TPU pod, or '
                    '--distributed=off for one process.')
  logging.info('jax.distributed initialised: process %d of %d (heartbeat timeout %ds)', jax.process_index(),
               jax.process_count(), _HEARTBEAT.value)
  _fail_fast_on_uncaught_exception(jax.process_index(), jax.process_count())
  _open_collectives_together(_INIT_TIMEOUT.value)


def _open_collectives_together(timeout_s: int) -> None:
  """Meets every process at a coordination-service barrier, then runs one collective over all devices.

  The first collective over a set of devices opens its gloo (CPU) connections through the coordinator's
  key-value store, and XLA:CPU waits a fixed 30 s there for the other processes: on a starved machine one process
  can reach its first collective (in Orbax's first sync, or the first train step) more than 30 s after another
  and the run dies with "Gloo context initialization failed: DEADLINE_EXCEEDED". The barrier waits up to
  `timeout_s` instead, and the collective right after it opens the connections while the processes are
  together; later collectives over the same devices reuse them.
  """
  from jax._src import distributed as jax_distributed  # the barrier has no public API (Orbax uses it too)
  from jax.experimental import multihost_utils
  jax_distributed.global_state.client.wait_at_barrier('refine_jax_open_collectives', timeout_s * 1000)
  multihost_utils.sync_global_devices('refine_jax_open_collectives')


def _fail_fast_on_uncaught_exception(index: int, count: int) -> None:
  """An uncaught exception ends this process at once, skipping jax's exit barrier.

  Otherwise the failing process would wait up to --shutdown_timeout_seconds in the shutdown barrier while the
  others block in their next collective; exiting at once drops its connections, so the others fail within
  seconds (a collective error, or the coordinator's heartbeat check). Orderly exits (sys.exit with codes 0/2/3/4)
  are not exceptions here and keep the barrier.
  """
  previous = sys.excepthook

  def hook(exc_type, exc, tb):
    try:
      previous(exc_type, exc, tb)
      print(f'error: process {index} of {count} failed ({exc_type.__name__}); exiting now without waiting for '
            'the other processes, which will stop with an error as well.', file=sys.stderr)
      sys.stdout.flush()
      sys.stderr.flush()
    finally:
      os._exit(1)
  sys.excepthook = hook
