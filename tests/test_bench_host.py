"""bench/bench_imagenet_host.py refuses bad flags as every command does: one `error:` line naming the flag and
what is allowed, exit 2, before it writes a photograph."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('flag,named', [('--pipelines=rrc,nope', '--pipelines'), ('--cores=0', '--cores'),
                                        ('--cores=1,x', '--cores'), ('--images=10', '--images'),
                                        ('--photos=1000', '--photos'), ('--repeats=0', '--repeats')])
def test_bad_flags_are_one_error_line_exit_2_and_write_nothing(tmp_path, flag, named):
  out = tmp_path / 'out'
  p = subprocess.run([sys.executable, 'bench/bench_imagenet_host.py', flag, f'--out={out}'], cwd=ROOT,
                     capture_output=True, text=True, timeout=120)
  lines = p.stderr.strip().splitlines()
  assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith('error: '), p.stderr
  assert named in lines[0] and 'allowed' in lines[0], lines[0]
  assert not out.exists()
