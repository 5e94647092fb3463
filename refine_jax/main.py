"""Entry point: flags, jax.distributed, logging; then `train.train_and_evaluate(config, workdir)`.

    python -m refine_jax.main --config=configs/digits_demo.py --workdir=/tmp/refine_digits \
        [--config.FIELD=VALUE ...]

Exit codes: 0 done, 2 bad config (nothing written), 3 preempted (checkpoint saved; re-run to resume),
4 diverged (last good checkpoint intact).
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file with get_config().')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and summaries.')
_COORD = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-process runs).')
_NPROC = flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-process runs).')
_PID = flags.DEFINE_integer('process_id', None, 'This process index (multi-process runs).')


def _config_root_on_path(argv) -> None:
  """Configs import `configs.common`; make the config file's project root importable from any cwd."""
  for a in argv:
    if a.startswith('--config='):
      path = os.path.abspath(a.split('=', 1)[1].split(':')[0])
      sys.path.insert(0, os.path.dirname(os.path.dirname(path)))


def _parse(argv):
  _config_root_on_path(argv)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - unknown override fields and bad values: usage error, exit 2
    print(f'error: bad flag or config override: {type(e).__name__}: {e}', file=sys.stderr)
    sys.exit(2)


def _init_distributed() -> None:
  """jax.distributed under a multi-process launch: explicit flags, or Slurm / Open MPI / TPU-pod detection."""
  import jax
  if _COORD.value or _NPROC.value:
    jax.distributed.initialize(_COORD.value, _NPROC.value, _PID.value)
  elif (int(os.environ.get('SLURM_NTASKS', '1')) > 1 or int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1')) > 1
        or len(os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) > 1):
    jax.distributed.initialize()


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _WORKDIR.value:
    print('error: --config and --workdir are required', file=sys.stderr)
    sys.exit(2)
  from refine_jax import config as config_lib
  from refine_jax import train
  _init_distributed()
  import jax
  logging.info('JAX %s, process %d/%d, devices: %s', jax.__version__, jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except train.Preempted as e:
    print(f'preempted: {e}', file=sys.stderr)
    sys.exit(3)
  except train.Diverged as e:
    print(f'diverged: {e}', file=sys.stderr)
    sys.exit(4)
  print(json_dumps(summary))


def json_dumps(obj) -> str:
  import json
  return json.dumps(obj, indent=2, sort_keys=True)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse)
