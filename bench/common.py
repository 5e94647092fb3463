"""Shared bits of the benchmarks: machine facts and appending a row to bench/RESULTS.md."""
from __future__ import annotations

import datetime
import os
import platform
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RESULTS.md')
_LOAD_AT_START = os.getloadavg()[0]  # read when a benchmark imports this module, before it measures


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    model = [l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')][0]
    cpu = model
  except (OSError, IndexError):
    pass
  return f'{os.cpu_count()} cores, {cpu}'


def versions(*mods: str) -> str:
  out = []
  for m in mods:
    try:
      out.append(f'{m} {__import__(m).__version__}')
    except ImportError:
      pass
  return ', '.join(out)


def append(title: str, table: str, mods: tuple[str, ...]) -> None:
  """Appends a dated section with the exact command, the machine and versions."""
  cmd = 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
  start, end = _LOAD_AT_START, os.getloadavg()[0]
  with open(RESULTS, 'a') as f:
    f.write(f'\n## {title} — {datetime.date.today().isoformat()}\n\n'
            f'- command: `{cmd}`\n- machine: {machine()} (1-min load average {start:.1f} at the start, {end:.1f} at the end)\n'
            f'- versions: {versions(*mods)}\n\n{table}\n')
