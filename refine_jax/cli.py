"""How every command runs (`run`: signals, logs, errors to exit codes), and the flag parsing they share: bad flags
and config overrides exit with code 2."""
import difflib
import importlib.util
import os
import sys
import tempfile
from typing import Callable, NamedTuple, Optional, Sequence

import ml_collections
from absl import app, flags, logging

from refine_jax import errors
from refine_jax import signals


class _QuietLibraries:
  """Drops INFO lines of Orbax / TFDS / XLA bridges so progress and eval lines stay readable."""
  _NOISY = ('orbax', 'tensorflow_datasets', 'xla_bridge', 'etils')

  def filter(self, record) -> bool:
    return record.levelno > 20 or not any(n in record.pathname for n in self._NOISY)


_QUIET = _QuietLibraries()


def guarded(main: Callable[[Sequence[str]], Optional[int]], argv: Sequence[str], *, trains: bool = False) -> int:
  """`main(argv)` run the one way every command runs; returns its exit code.

  SIGTERM / SIGINT are caught from main's first line: a command that trains records them for its loop (a
  checkpoint, then exit 3), any other stops at once (exit 3). The errors every command shares end it with one line
  and their exit code (`errors.EXITS`): `error:` and 2 for bad input, `preempted:` and 3, `diverged:` and 4.
  """
  restore = signals.catch_early() if trains else signals.stop_at_once()
  logging.get_absl_handler().addFilter(_QUIET)
  try:
    return main(argv) or 0
  except tuple(t for types, _, _ in errors.EXITS for t in types) as e:
    _, code, word = next(x for x in errors.EXITS if isinstance(e, x[0]))
    print(f'{word}: {e}', file=sys.stderr)
    return code
  finally:
    restore()


def run(main: Callable[[Sequence[str]], Optional[int]], *, trains: bool = False) -> None:
  """An absl command: flags parsed by `parse_flags` (bad flags exit 2), then `guarded(main)`, then exit."""
  app.run(lambda argv: sys.exit(guarded(main, argv, trains=trains)), flags_parser=parse_flags)


def _config_spec(argv) -> Optional[str]:
  """The value of --config (`--config=FILE[:ARG]` or `--config FILE[:ARG]`), None when absent."""
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def usage_error(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _check_config_file(spec: Optional[str]) -> None:
  """A missing config file is a one-line usage error; configs import `configs.common`, so the file's project
  root goes on the path (any cwd works)."""
  if spec is None:
    usage_error('--config is required: a config file with get_config(), e.g. --config=configs/digits_demo.py')
  path = spec.split(':', 1)[0]
  if not os.path.isfile(path):
    usage_error(f'--config: no such config file {path!r} (a Python file with get_config(), e.g. '
                 'configs/digits_demo.py)')
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(path))))


def _load_config(spec: str):
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('_refine_jax_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def unknown_field(config, argv) -> Optional[str]:
  """The first `--config.A.B=...` override that names no field of `config`, with the nearest field names."""
  for a in argv:
    if not a.startswith('--config.'):
      continue
    keys = a[len('--config.'):].split('=', 1)[0].split('.')
    node = config
    for i, k in enumerate(keys):
      if not isinstance(node, ml_collections.ConfigDict) or k not in node:
        parent = '.'.join(['config', *keys[:i]])
        names = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        near = difflib.get_close_matches(k, names, n=3, cutoff=0.5)
        hint = (f'did you mean {", ".join(near)}?' if near else
                f'fields of {parent}: {", ".join(names)}' if names else f'{parent} has no fields')
        return f'{".".join(["config", *keys[:i + 1]])} is not a config field; {hint}'
      node = node[k]
  return None


HELP_FLAGS = ('-h', '-?', '--help', '--helpshort', '--helpfull')


def parse_flags(argv):
  """absl's parser, with `--help` printed here (exit 0), and a missing config file, unknown config fields and
  badly typed overrides reported as usage errors (exit 2)."""
  if any(a in HELP_FLAGS for a in argv[1:]):
    print(help_text())
    sys.exit(0)
  spec = _config_spec(argv)
  _check_config_file(spec)
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - unknown override fields and bad values: usage error, exit 2
    unknown = None
    if isinstance(e, (AttributeError, KeyError)) and spec is not None:
      unknown = unknown_field(_load_config(spec), argv)
    usage_error(unknown or f'bad flag or config override: {type(e).__name__}: {e}')


OVERRIDES = """\
Config overrides, after --config (any number):
  --config.FIELD=VALUE             e.g. --config.batch_size=64  --config.dtype=bfloat16
  --config.A.B.C=VALUE             nested fields: --config.phases.refine.epochs=50  --config.optimizer.momentum=0.9
  tuples (1,2) or (2,), strings bare or quoted (--config.phases.refine.pp=  sets ''), None for unset; a set
  *_steps wins over *_epochs (--config.phases.augmented.steps=100 needs no epochs=None).
  --config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=cutmix builds any paper experiment (keys: dataset,
  model, aug, gamma, p, policy, t1, t2, refine, gradual; configs/paper.py says what each takes)."""


def help_text() -> str:
  """`--help`: the command's usage, its flags, the override syntax and every config field (its default, role and
  meaning, from refine_jax/fields.py)."""
  from refine_jax import fields
  main_module = sys.modules.get('__main__')
  out = [(getattr(main_module, '__doc__', None) or '').strip(), '', 'Flags:']
  for module, module_flags in sorted(flags.FLAGS.flags_by_module_dict().items()):
    if module == '__main__' or module.startswith('refine_jax') or module == getattr(main_module, '__file__', ''):
      for f in sorted(module_flags, key=lambda f: f.name):
        default = '' if f.default is None else f' (default {f.default!r})'
        out.append(f'  --{f.name}: {f.help}{default}')
  if any(f == 'config' for f in flags.FLAGS):
    out += ['', OVERRIDES, '', 'Config fields (each with its default and role: trains, measures, seed, label or '
            'bookkeeping; refine_jax/fields.py):']
    rows = [(k, f) for k, f in fields.FIELDS.items()] + [(f'phases.PHASE.{k}', f) for k, f in
                                                          fields.PHASE_FIELDS.items()]
    width = max(len(k) for k, _ in rows)
    out += [f'  {k:<{width}}  {f.default!r}; {f.role.value}: {f.doc}' for k, f in rows]
    out.append(f'  (PHASE: {", ".join(fields.PHASE_NAMES)})')
  return '\n'.join(out)


def check_workdir_path(workdir: str) -> None:
  """A local --workdir must be a directory that can be created or written; checked before anything else runs
  by creating and removing a probe directory, which leaves no trace (as root, permission bits say little)."""
  from refine_jax import workdir as workdir_lib  # epath: not needed to parse flags
  if not workdir_lib.is_local(workdir):  # gs://...: the filesystem says at the first write
    return
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    usage_error(f'--workdir: {workdir} exists and is not a directory')
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    usage_error(f'--workdir: cannot create {workdir}: {parent} is not a directory')
  try:
    os.rmdir(tempfile.mkdtemp(prefix='.refine_jax_probe_', dir=parent))
  except OSError as e:
    what = 'write to' if parent == path else f'create {workdir} in'
    usage_error(f'--workdir: cannot {what} {parent}: {e.strerror}')
  for name in workdir_lib.RUN_FILES:  # each file the run rewrites or appends to, opened for appending: no write
    try:
      if os.path.lexists(os.path.join(path, name)):
        open(os.path.join(path, name), 'a').close()  # noqa: SIM115 - a probe: nothing is written
    except OSError as e:
      usage_error(f'--workdir: cannot write {os.path.join(path, name)}: {e.strerror} (the run appends to it or '
                  'rewrites it); make it writable, or use another --workdir')


class OpenMpiProcess(NamedTuple):
  size: int
  rank: int
  local_rank: int


def open_mpi5_process(env=None) -> Optional[OpenMpiProcess]:
  """This process's place in an Open MPI 5 (PRRTE) job, read from the variables Open MPI sets for every process;
  None outside one, and under Open MPI 4 (ORTE, which also sets OMPI_MCA_orte_hnp_uri: jax detects it alone)."""
  env = os.environ if env is None else env
  if 'OMPI_COMM_WORLD_SIZE' not in env or 'OMPI_MCA_orte_hnp_uri' in env:
    return None
  rank = int(env.get('OMPI_COMM_WORLD_RANK', '0'))
  return OpenMpiProcess(int(env['OMPI_COMM_WORLD_SIZE']), rank, int(env.get('OMPI_COMM_WORLD_LOCAL_RANK', rank)))


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
