"""Train a run: both phases, resumed where it stopped; its files in --workdir.

    python -m refine_jax.main --config=configs/digits_demo.py --workdir=/tmp/refine_digits [--config.FIELD=VALUE ...]
    python -m refine_jax.main --config=configs/cifar10_preact18_mixup.py --config.data_dir=DIR --dry_run

Exit codes (`errors.EXITS`): 0 done, 2 bad input or a workdir another live run holds (nothing written; `lock`),
3 preempted (checkpoint saved; re-run to resume), 4 diverged (last good checkpoint intact), 1 a crash, or this
run's workdir lock taken by another run (it stops at once).
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from refine_jax import cli, distributed

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A config file with get_config(): configs/NAME.py, or '
                                          'configs/paper.py:KEY=VALUE,... for any paper experiment.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and summaries (local or '
                               'gs://...); re-running the same command resumes the run in it.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Print the resolved plan (steps per epoch, each phase\'s epochs, '
                             'steps, learning rates, mixing and host ops, the evals and checkpoints, the paper row) '
                             'and exit; reads no image and writes nothing.')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None:
    cli.usage_error('--config is required: a config file with get_config(), e.g. --config=configs/digits_demo.py')
  if not _WORKDIR.value and not _DRY_RUN.value:
    cli.usage_error('--workdir is required: the directory the run writes to, e.g. --workdir=/tmp/refine_digits')
  from refine_jax import config as config_lib
  from refine_jax import registries
  config_lib.validate(_CONFIG.value, registries.light())  # the names and values that need no heavy import
  if _DRY_RUN.value:
    from refine_jax import prepare
    print('\n'.join(prepare.describe(_CONFIG.value)))
    return
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
