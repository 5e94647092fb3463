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
