"""Flag parsing shared by the commands (main, preview): bad flags and config overrides exit with code 2."""
import os
import sys

from absl import flags


def _config_root_on_path(argv) -> None:
  """Configs import `configs.common`; make the config file's project root importable from any cwd."""
  for a in argv:
    if a.startswith('--config='):
      path = os.path.abspath(a.split('=', 1)[1].split(':')[0])
      sys.path.insert(0, os.path.dirname(os.path.dirname(path)))


def parse_flags(argv):
  """absl's parser, with unknown config fields and badly typed overrides reported as usage errors (exit 2)."""
  _config_root_on_path(argv)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - unknown override fields and bad values: usage error, exit 2
    print(f'error: bad flag or config override: {type(e).__name__}: {e}', file=sys.stderr)
    sys.exit(2)


def cluster_env_detected() -> bool:
  """A multi-process launch visible in the environment (without asking any metadata server)."""
  env = os.environ

  def count(name: str) -> int:
    try:
      return int(env.get(name, '1').split('(')[0])
    except ValueError:
      return 1
  # srun sets SLURM_STEP_NUM_TASKS; the batch script itself (one process) must not initialise.
  slurm = 'SLURM_STEP_ID' in env and count('SLURM_STEP_NUM_TASKS') > 1
  ompi = count('OMPI_COMM_WORLD_SIZE') > 1
  tpu = len([h for h in (env.get('TPU_PROCESS_ADDRESSES') or env.get('TPU_WORKER_HOSTNAMES') or '').split(',')
             if h]) > 1
  return slurm or ompi or tpu or bool(env.get('JAX_COORDINATOR_ADDRESS'))
