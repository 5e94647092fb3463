"""Entry point: flags, jax.distributed, logging; then `train.train_and_evaluate(config, workdir)`.

    python -m refine_jax.main --config=configs/digits_demo.py --workdir=/tmp/refine_digits \
        [--config.FIELD=VALUE ...]

Exit codes (`errors.EXITS`): 0 done, 2 bad input or a workdir another live run holds (nothing written; `lock`),
3 preempted (checkpoint saved; re-run to resume), 4 diverged (last good checkpoint intact), 1 a crash, or this
run's workdir lock taken by another run (it stops at once).
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from refine_jax import cli, distributed

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file with get_config().')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and summaries.')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _WORKDIR.value:
    print('error: --config and --workdir are required', file=sys.stderr)
    sys.exit(2)
  cli.check_workdir_path(_WORKDIR.value)
  from refine_jax import train
  distributed.initialize()
  import jax
  logging.info('JAX %s, process %d/%d, devices: %s', jax.__version__, jax.process_index(), jax.process_count(),
               jax.devices())
  summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if jax.process_index() == 0:
    from refine_jax import workdir
    print(workdir.dumps(summary, indent=2))


if __name__ == '__main__':
  cli.run(main, trains=True)
