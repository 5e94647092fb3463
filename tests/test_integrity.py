"""Nothing lost, nothing silent (issue 17): a checkpoint that does not fit the model is an error that leaves the
workdir as it was; a silently corrupted checkpoint is detected, set aside, and the run resumes from the one before;
a phase that rounds to 0 steps is refused.

Through the real entry point on the digits demo with test_resume's ARGS (checkpoints at 8 16 24 32 40 44 48 56 64
66, all kept); the reference is an uninterrupted run of the same ARGS, and "equal" is test_resume's
assert_equals_reference (rows, summary, kept steps, every array of the final checkpoint bit for bit).
"""
from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import signal

import pytest

from tests.conftest import run_main
from tests.test_resume import _subprocess_env  # noqa: F401 - the module fixture, used by `ref`
from tests.test_resume import (ARGS, TOTAL, Run, assert_equals_reference, ckpt_dir, interrupted_copy,
                               load_checkpoint, read_rows, read_summary, resumed_from, run, steps, wait_for)


@pytest.fixture(scope='module')
def ref(tmp_path_factory, _subprocess_env) -> dict:  # noqa: F811 - the fixture imported above
  w = str(tmp_path_factory.mktemp('integrity') / 'ref')
  r = run(w, *ARGS)
  state, meta = load_checkpoint(ckpt_dir(w), TOTAL)
  return {'workdir': w, 'rows': read_rows(w), 'summary': read_summary(w), 'steps': steps(w), 'state': state,
          'meta': meta, 'stderr': r.stderr}


def _bytes_of(w: str, sub: str) -> dict:
  """{relative path: bytes} of every file under w/sub (or of the file w/sub)."""
  p = os.path.join(w, sub)
  if os.path.isfile(p):
    with open(p, 'rb') as f:
      return {sub: f.read()}
  out = {}
  for root, _, files in os.walk(p):
    for n in files:
      with open(os.path.join(root, n), 'rb') as f:
        out[os.path.relpath(os.path.join(root, n), w)] = f.read()
  return out


def test_a_checkpoint_of_another_model_is_refused_and_nothing_is_moved_or_truncated(ref, tmp_path):
  """Finding 1: width 8 instead of 16 with allow_config_change: exit 2 naming the first differing tensor (its
  shape in the checkpoint, and half the channels now) and the field that changed; checkpoints/, metrics.jsonl,
  config.json byte for byte as they were; no checkpoints_unreadable/."""
  w = str(tmp_path / 'w')
  shutil.copytree(ref['workdir'], w)
  before = {**_bytes_of(w, 'checkpoints'), **_bytes_of(w, 'metrics.jsonl'), **_bytes_of(w, 'config.json')}
  r = run(w, *ARGS, "--config.model_kwargs={'width': 8}", '--config.allow_config_change=True', rc=None)
  assert r.rc == 2, r.tail()
  last = r.stderr.strip().splitlines()[-1]
  assert 'config.model_kwargs' in last and 'does not fit' in last, r.tail()
  m = re.search(r'tensor (params\.[\w.]+) is float32(\([\d, ]+\)) in the checkpoint, float32(\([\d, ]+\)) now', last)
  assert m, last
  # The named tensor really is that shape in the checkpoint, and the half-width model halves its channels.
  saved = ref['state']["['" + "']['".join(m[1].split('.')) + "']"]
  have, want = ast.literal_eval(m[2]), ast.literal_eval(m[3])
  assert saved.shape == have and want[-1] * 2 == have[-1], (m[0], saved.shape)
  assert 'unreadable' not in r.stderr and 'Traceback' not in r.stderr, r.tail()
  assert not os.path.exists(w + '/checkpoints_unreadable')
  after = {**_bytes_of(w, 'checkpoints'), **_bytes_of(w, 'metrics.jsonl'), **_bytes_of(w, 'config.json')}
  assert sorted(after) == sorted(before) and all(after[k] == before[k] for k in before)


def flip_bytes(step_dir: str, n: int = 1000) -> str:
  """Inverts n bytes in the middle of the largest array-data file of a checkpoint (silent corruption)."""
  files = [p for p in glob.glob(os.path.join(step_dir, 'state', '**', '*'), recursive=True) if os.path.isfile(p)]
  victim = max(files, key=os.path.getsize)
  with open(victim, 'r+b') as f:
    data = bytearray(f.read())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
    f.seek(0)
    f.write(data)
  return victim


def test_a_byte_flipped_checkpoint_is_set_aside_and_the_run_ends_equal_to_the_uninterrupted_one(ref, tmp_path):
  """Finding 2: the newest checkpoint (64) of a killed run has 1000 flipped bytes; the re-run names it, moves it
  aside, resumes from 56 and ends bitwise on the reference."""
  w = interrupted_copy(ref['workdir'], str(tmp_path / 'w'), 64)
  flip_bytes(os.path.join(ckpt_dir(w), '64'))
  r = run(w, *ARGS, rc=None)
  assert r.rc == 0, r.tail()
  # Which layer notices depends on where the flips land: Orbax/TensorStore when they hit compressed chunks or
  # their index (seen in CI), the SHA-256 of the integrity item when the bytes still decode. Either way the
  # checkpoint is set aside and the run resumes from the one before.
  assert re.search(r'step 64 .*(fails its integrity check|is unreadable)', r.stderr), r.tail()
  assert resumed_from(r.stderr) == 56, r.tail()
  aside = os.listdir(w + '/checkpoints_unreadable')
  assert len(aside) == 1 and aside[0].startswith('64.'), aside
  assert_equals_reference(w, ref)


def alter_digest(step_dir: str) -> str:
  """Replaces the SHA-256 saved with a checkpoint by another valid-looking one (the array bytes untouched)."""
  path = os.path.join(step_dir, 'integrity', 'metadata')
  with open(path) as f:
    item = json.load(f)
  item['state_sha256'] = item['state_sha256'][::-1]
  with open(path, 'w') as f:
    json.dump(item, f)
  return item['state_sha256']


def test_a_checkpoint_whose_saved_checksum_differs_is_set_aside_by_the_checksum_alone(ref, tmp_path):
  """The checksum path in isolation: checkpoint 64's arrays intact (they restore and are finite), its saved
  digest altered. Only the SHA-256 comparison can notice: the re-run names it, moves it aside, resumes from 56
  and ends bitwise on the reference."""
  w = interrupted_copy(ref['workdir'], str(tmp_path / 'w'), 64)
  alter_digest(os.path.join(ckpt_dir(w), '64'))
  r = run(w, *ARGS, rc=None)
  assert r.rc == 0, r.tail()
  assert re.search(r'step 64 .*fails its integrity check .*do not match the checksum', r.stderr), r.tail()
  assert 'is unreadable' not in r.stderr, r.tail()
  assert resumed_from(r.stderr) == 56, r.tail()
  aside = os.listdir(w + '/checkpoints_unreadable')
  assert len(aside) == 1 and aside[0].startswith('64.'), aside
  assert_equals_reference(w, ref)


def test_init_from_passes_over_a_corrupt_checkpoint_of_the_source_and_moves_nothing(ref, tmp_path):
  """init_from reads another run's newest checkpoint through the same checks: with 66's digest altered it warns,
  initialises from 64 (the log names the step), and the source directory is left exactly as it was. The
  checks are the log's and the source's."""
  src = str(tmp_path / 'src')
  shutil.copytree(ref['workdir'], src)
  alter_digest(os.path.join(ckpt_dir(src), str(TOTAL)))
  before = _bytes_of(src, 'checkpoints')
  w = str(tmp_path / 'w')
  r = run(w, *ARGS, f'--config.init_from={src}', '--config.phases.augmented.epochs=0.1',
          '--config.phases.refine.epochs=0.1', rc=None)  # 2 + 2 steps
  assert r.rc == 0, r.tail()
  assert re.search(rf'step {TOTAL} .*fails its integrity check', r.stderr), r.tail()
  prev = max(s for s in ref['steps'] if s < TOTAL)
  assert f'initialised parameters from {src} (step {prev},' in r.stderr, r.tail()
  assert _bytes_of(src, 'checkpoints') == before and not os.path.exists(ckpt_dir(src) + '_unreadable')


def test_a_checkpoint_without_metadata_is_set_aside_and_the_run_ends_equal_to_the_uninterrupted_one(ref, tmp_path):
  """Issue 25.3: checkpoint 64 of a killed run without its state/_METADATA (Orbax then reads no metadata at all,
  which read as "tensor ... is absent": another model, exit 2 on every re-run), and 56 without its integrity item.
  The re-run names 64 unreadable, moves it aside, resumes from 56 saying in one line that its bytes were not
  verified, and ends bitwise on the reference."""
  w = interrupted_copy(ref['workdir'], str(tmp_path / 'w'), 64)
  os.remove(os.path.join(ckpt_dir(w), '64', 'state', '_METADATA'))
  shutil.rmtree(os.path.join(ckpt_dir(w), '56', 'integrity'))
  r = run(w, *ARGS, rc=None)
  assert r.rc == 0, r.tail()
  assert re.search(r'step 64 .*is unreadable .*state/_METADATA missing', r.stderr), r.tail()
  assert 'does not fit' not in r.stderr, r.tail()
  assert resumed_from(r.stderr) == 56, r.tail()
  assert len(re.findall('checkpoint 56 has no integrity record; its bytes were not verified', r.stderr)) == 1, r.tail()
  aside = os.listdir(w + '/checkpoints_unreadable')
  assert len(aside) == 1 and aside[0].startswith('64.'), aside
  assert_equals_reference(w, ref)


# --------------------------------------------------------------------------- Checkpoints alone, on tiny trees


def _tree(extra: bool = False, width: int = 4) -> dict:
  import jax.numpy as jnp
  params = {'a': jnp.arange(3. * width).reshape(3, width), 'b': jnp.linspace(0., 1., 5)}
  if extra:
    params['c'] = jnp.ones(2)
  return {'params': params, 'step': jnp.int32(7)}


def _saved(directory: str, tree: dict, steps=(1, 2)) -> str:
  from refine_jax import checkpoint as ckpt_lib
  with ckpt_lib.Checkpoints(directory, 5) as ck:
    for s in steps:
      ck.save(s, tree, {'step': s})
      ck.wait()
  return directory


def _drop_tensor_b(step_dir: str) -> None:
  """state/_METADATA still valid JSON, one tensor fewer: incomplete metadata, not another model."""
  path = os.path.join(step_dir, 'state', '_METADATA')
  with open(path) as f:
    item = json.load(f)
  del item['tree_metadata'][next(k for k in item['tree_metadata'] if "'b'" in k)]
  with open(path, 'w') as f:
    json.dump(item, f)


@pytest.mark.parametrize('damage', ['no _METADATA', 'metadata of a tensor missing', 'damaged _METADATA'])
def test_a_checkpoint_whose_metadata_is_missing_or_incomplete_is_set_aside_for_the_one_before(tmp_path, damage,
                                                                                              caplog):
  """Only metadata that reads whole can make a checkpoint 'another model'; missing, truncated or incomplete
  metadata makes it unreadable: warned about, moved to checkpoints_unreadable/, and the one before restored
  (its arrays equal to those saved)."""
  import jax
  import numpy as np
  from refine_jax import checkpoint as ckpt_lib
  d = _saved(str(tmp_path / 'checkpoints'), _tree())
  meta = os.path.join(d, '2', 'state', '_METADATA')
  if damage == 'no _METADATA':
    os.remove(meta)
  elif damage == 'damaged _METADATA':
    with open(meta, 'r+b') as f:
      f.truncate(os.path.getsize(meta) // 2)
  else:
    _drop_tensor_b(os.path.join(d, '2'))
  with caplog.at_level('WARNING'), ckpt_lib.Checkpoints(d, 5) as ck:
    state, meta_record = ck.restore_latest(ckpt_lib.abstract(_tree()))
    assert ck.steps() == [1]
  assert meta_record == {'step': 1}
  jax.tree.map(np.testing.assert_array_equal, state, _tree())
  assert re.search(r'step 2 under \S+ (is unreadable|fails its integrity check)', caplog.text), caplog.text
  aside = os.listdir(d + '_unreadable')
  assert len(aside) == 1 and aside[0].startswith('2.'), aside


@pytest.mark.parametrize('other', ['a tensor more', 'wider', 'a tensor more, no integrity record'])
def test_a_readable_checkpoint_of_another_model_raises_mismatch_and_moves_nothing(tmp_path, other):
  """The other side: an intact checkpoint of another structure (an extra tensor, another shape), with or without
  its integrity record, is Mismatch naming the tensor, and every file stays where it was."""
  from refine_jax import checkpoint as ckpt_lib
  d = _saved(str(tmp_path / 'checkpoints'), _tree(extra='more' in other, width=6 if other == 'wider' else 4))
  if 'no integrity' in other:
    shutil.rmtree(os.path.join(d, '2', 'integrity'))
  before = _bytes_of(str(tmp_path), 'checkpoints')
  with ckpt_lib.Checkpoints(d, 5) as ck:
    with pytest.raises(ckpt_lib.Mismatch) as e:
      ck.restore_latest(ckpt_lib.abstract(_tree()))
  want = ('params.c', 'float32(2,)', 'absent') if 'more' in other else ('params.a', 'float32(3, 6)', 'float32(3, 4)')
  assert (e.value.step, e.value.path, e.value.have, e.value.want) == (2, *want), str(e.value)
  assert _bytes_of(str(tmp_path), 'checkpoints') == before and not os.path.exists(d + '_unreadable')


def test_resuming_a_checkpoint_without_an_integrity_record_says_so_in_one_line(tmp_path, caplog):
  from refine_jax import checkpoint as ckpt_lib
  d = _saved(str(tmp_path / 'checkpoints'), _tree())
  shutil.rmtree(os.path.join(d, '2', 'integrity'))
  with caplog.at_level('WARNING'), ckpt_lib.Checkpoints(d, 5) as ck:
    _, meta = ck.restore_latest(ckpt_lib.abstract(_tree()))
  assert meta == {'step': 2}
  lines = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert lines == ['checkpoint 2 has no integrity record; its bytes were not verified'], lines


_SLOW_CLEANUP = """
import sys, time
from orbax.checkpoint._src.path import async_path
real = async_path.iterdir
async def slow(path):  # Orbax's start-up clean-up of unfinished temporary directories, made slow
  time.sleep(1.0)
  return await real(path)
async_path.iterdir = slow
from refine_jax import checkpoint
checkpoint.Checkpoints(sys.argv[1], 3).close()
"""


def test_closing_checkpoints_waits_for_orbaxs_start_up_clean_up(tmp_path):
  """A run stopped right after set-up closes its checkpoints and exits: Orbax's start-up clean-up, still running in
  its own thread, must be waited for, or interpreter shutdown kills it with a traceback (seen under CI's load as
  "cannot schedule new futures after interpreter shutdown" after a SIGINT during set-up)."""
  import subprocess
  import sys
  p = subprocess.run([sys.executable, '-c', _SLOW_CLEANUP, str(tmp_path / 'ckpts')], capture_output=True, text=True,
                     timeout=300)
  assert p.returncode == 0 and 'Traceback' not in p.stderr, p.stderr[-3000:]


def test_a_phase_that_rounds_to_zero_steps_is_refused_before_anything_is_written(tmp_path):
  """Finding 4: 0.01 of a 22-step epoch rounds to 0 steps: exit 2 naming the field, no workdir."""
  w = str(tmp_path / 'w')
  p = run_main('digits_demo.py', w, '--config.phases.refine.epochs=0.01', check=False, timeout=300)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert 'config.phases.refine.epochs' in last and '0 steps' in last, last
  assert not os.path.exists(w)


def test_each_line_is_logged_once_and_the_first_speed_leaves_compilation_out(ref):
  """Finding 5: one 'eval step N' line per eval and none of clu's '[N] eval/...' repeats (nor of the train lines);
  the speed of a phase's first log line is measured after its first (compiled) step, so it is of the order of the
  second's (it was 77 vs 1301 images/s, about 1/17, when it counted the compilation)."""
  err = ref['stderr']
  for s in (22, 44, 66):
    assert len(re.findall(rf'eval step {s} ', err)) == 1, err[-3000:]
  assert not re.search(r'\] \[\d+\] (eval|train)/', err), err[-3000:]
  speeds = [float(x) for x in re.findall(r'phase augmented .* (\d+) images/s', err)]
  assert len(speeds) >= 2 and speeds[0] >= speeds[1] / 5, speeds


def test_sigint_during_set_up_is_kept_and_exits_3(tmp_path, _subprocess_env):  # noqa: F811
  """Finding 5: SIGINT while the run is still setting up (devices logged, model not yet initialised) is acted
  on, not lost or turned into a traceback: exit 3, the 'preempted' line, no checkpoint written."""
  w = str(tmp_path / 'w')
  r = Run(w, *ARGS)
  wait_for(r, lambda: 'process 0 of 1' in r.stderr, 'the devices line')
  r.kill(signal.SIGINT)
  assert r.rc == 3, r.tail()
  assert 'preempted: received signal 2' in r.stderr and 'Traceback' not in r.stderr, r.tail()
  assert not steps(w), steps(w)


def test_sigint_while_main_is_still_importing_is_kept_and_exits_3(tmp_path, _subprocess_env):  # noqa: F811
  """SIGINT as soon as JAX's native library is loaded (main is importing; no handler of the loop yet): caught
  by main's first line, acted on once the loop's handlers take over — exit 3, the 'preempted' line, no
  traceback, nothing trained. Before, it became a KeyboardInterrupt traceback, or was lost in a GC callback."""
  w = str(tmp_path / 'w')
  r = Run(w, *ARGS)

  def importing_jax() -> bool:
    try:
      with open(f'/proc/{r.proc.pid}/maps') as f:
        return '/jaxlib/' in f.read()
    except OSError:
      return False
  if not os.path.exists('/proc/self/maps'):
    r.kill()
    pytest.skip('no /proc: cannot see when the process imports jax')
  wait_for(r, importing_jax, 'jaxlib loaded')
  r.kill(signal.SIGINT)
  assert r.rc == 3, r.tail()
  assert 'preempted: received signal 2 during set-up' in r.stderr and 'Traceback' not in r.stderr, r.tail()
  assert not steps(w), steps(w)


def test_two_seeded_random_sigkills_then_the_run_ends_equal_to_the_uninterrupted_one(ref, tmp_path):
  """Item 6 in small (bench/soak_sigkill.py runs the 20-kill soak): SIGKILL twice at seeded random moments
  after training starts; after each kill the eval rows so far are the reference's; the finishing launch ends
  bitwise on the reference."""
  import random
  from bench import soak_sigkill
  w = str(tmp_path / 'w')
  kills, launches = soak_sigkill._round(w, random.Random(1), 2, 6.0, ref)  # noqa: SLF001
  assert launches == kills + 1 and kills >= 1, (kills, launches)
  assert_equals_reference(w, ref)
