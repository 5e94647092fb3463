"""Bad input a new user types, through the real entry points: one `error:` line naming the flag or field, exit 2,
no traceback, and the workdir (or the file in its place) exactly as it was."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, env_for

DEMO = os.path.join(ROOT, 'configs', 'digits_demo.py')
PRECIOUS = 'precious\n'


def _read_only_parent(tmp_path) -> str:
  """A directory nobody can create entries in: sysfs refuses mkdir even to root; otherwise a mode-555 folder."""
  if os.geteuid() == 0:
    return '/sys'
  d = tmp_path / 'read_only'
  d.mkdir()
  d.chmod(0o555)
  return str(d)


def _workdirs(tmp_path) -> dict:
  """Places a user might pass as --workdir, each holding something that must survive."""
  w = tmp_path / 'w'
  w.mkdir()
  (w / 'keep.txt').write_text(PRECIOUS)
  f = tmp_path / 'a_file'
  f.write_text(PRECIOUS)
  return {'dir': str(w), 'file': str(f), 'under_file': str(f / 'sub'),
          'read_only': os.path.join(_read_only_parent(tmp_path), 'refine_jax_test_workdir')}


# (id, command module, argv (WORKDIR stands for the workdir), which workdir, words the error line must hold,
# words it must not hold)
CASES = [
    ('missing_config_file', 'main', ['--config=configs/nope.py', '--workdir=WORKDIR'], 'dir',
     ['--config', 'no such config file', 'configs/nope.py'], []),
    ('missing_config_file_space_form', 'main', ['--config', 'configs/nope.py', '--workdir=WORKDIR'], 'dir',
     ['--config', 'configs/nope.py'], []),
    ('preview_without_config', 'preview', ['--out=WORKDIR/grid.png'], 'dir', ['--config is required'], []),
    ('workdir_is_a_file', 'main', [f'--config={DEMO}', '--workdir=WORKDIR'], 'file',
     ['--workdir', 'exists and is not a directory'], []),
    ('workdir_under_a_file', 'main', [f'--config={DEMO}', '--workdir=WORKDIR'], 'under_file',
     ['--workdir', 'is not a directory'], []),
    ('workdir_in_read_only_dir', 'main', [f'--config={DEMO}', '--workdir=WORKDIR'], 'read_only',
     ['--workdir', 'cannot create'], []),
    ('unknown_field', 'main', [f'--config={DEMO}', '--workdir=WORKDIR', '--config.no_such_field=1'], 'dir',
     ['config.no_such_field is not a config field', 'batch_size'], ['AttributeError']),
    ('misspelt_field_suggests', 'main', [f'--config={DEMO}', '--workdir=WORKDIR', '--config.batch_sise=16'], 'dir',
     ['config.batch_sise is not a config field', 'did you mean batch_size'], []),
    ('misspelt_nested_field', 'main', [f'--config={DEMO}', '--workdir=WORKDIR',
                                       '--config.phases.augmented.mix.gama=1'], 'dir',
     ['config.phases.augmented.mix.gama is not a config field', 'did you mean gamma'], []),
    ('unknown_dataset_suggests', 'main', [f'--config={DEMO}', '--workdir=WORKDIR', '--config.dataset=cifar11'],
     'dir', ['config.dataset', 'did you mean', 'cifar10', 'digits', 'tfds.list_builders()'], ['abstract_reasoning']),
    ('negative_gamma', 'main', [f'--config={DEMO}', '--workdir=WORKDIR', '--config.phases.augmented.mix.gamma=-1'],
     'dir', ['config.phases.augmented.mix.gamma', '>= 0', 'got -1'], []),
]


def _snapshot(path: str):
  if os.path.isfile(path):
    with open(path) as f:
      return ('file', f.read())
  if os.path.isdir(path):
    return ('dir', sorted((n, open(os.path.join(path, n)).read()) for n in os.listdir(path)))
  return None


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case):
  _, module, argv, which, words, absent = case
  workdirs = _workdirs(tmp_path)
  workdir = workdirs[which]
  before = {k: _snapshot(v) for k, v in workdirs.items()}
  parent = os.path.dirname(workdir)
  parent_before = sorted(os.listdir(parent)) if os.path.isdir(parent) else None
  args = [a.replace('WORKDIR', workdir) for a in argv]
  p = subprocess.run([sys.executable, '-m', f'refine_jax.{module}', *args], cwd=ROOT, env=env_for(),
                     capture_output=True, text=True, timeout=600)
  assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
  assert 'Traceback' not in p.stderr, p.stderr[-3000:]
  errors = [l for l in p.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, p.stderr[-3000:]
  line = errors[0]
  for w in words:
    assert w in line, (w, line)
  for w in absent:
    assert w not in line, (w, line)
  assert len(line) < 600, line  # a line, not a listing of hundreds of allowed values
  assert line.count('>= 0') <= 1, line
  assert {k: _snapshot(v) for k, v in workdirs.items()} == before
  if parent_before is not None:  # no probe or half-made workdir left beside it
    assert sorted(os.listdir(parent)) == parent_before


def test_an_unwritable_metrics_file_is_refused_with_the_workdir_check(tmp_path):
  """An immutable metrics.jsonl (root cannot write it either) once passed the workdir check and failed at the first
  eval with a traceback; now it is named at once, exit 2, and nothing is written."""
  import shutil
  w = tmp_path / 'w'
  w.mkdir()
  (w / 'metrics.jsonl').write_text('{"step": 1}\n')
  if shutil.which('chattr') is None or subprocess.run(['chattr', '+i', str(w / 'metrics.jsonl')]).returncode:
    pytest.skip('chattr +i is not available here')
  try:
    p = subprocess.run([sys.executable, '-m', 'refine_jax.main', f'--config={DEMO}', f'--workdir={w}'], cwd=ROOT,
                       env=env_for(), capture_output=True, text=True, timeout=300)
  finally:
    subprocess.run(['chattr', '-i', str(w / 'metrics.jsonl')])
  assert p.returncode == 2, p.stderr[-2000:]
  lines = [l for l in p.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith(f'error: --workdir: cannot write {w / "metrics.jsonl"}'), lines
  assert sorted(os.listdir(w)) == ['metrics.jsonl'] and (w / 'metrics.jsonl').read_text() == '{"step": 1}\n'
