"""Workdir files on a remote filesystem (gs://...): everything the trainer writes besides Orbax's checkpoints
goes through etils.epath, so it works on any epath filesystem. Here gs://bucket is mapped onto a local folder
with etils' own epath mock (conftest's `bucket`, no network); Orbax's gs:// support is Orbax's and is not
exercised here."""
import json
import os

import pytest
from etils import epath

from refine_jax import train, workdir
from refine_jax.config import ConfigError


def test_metrics_files_on_a_remote_workdir(bucket):
  root, seen = bucket
  w = 'gs://bucket/runs/a'
  epath.Path(w).mkdir(parents=True, exist_ok=True)
  path = f'{w}/{workdir.METRICS}'
  assert not workdir.is_local(path) and workdir.is_local('runs/a') and workdir.is_local('/tmp/x')
  for step in (10, 20, 30):
    workdir.append_jsonl(path, {'step': step, 'phase': 'augmented', 'test_top1': step / 100})
  assert [r['step'] for r in workdir.read_jsonl(path)] == [10, 20, 30]
  workdir.truncate_after(path, 20)  # a run resumed at step 20 logs step 30 again
  lines = (root / 'runs/a' / workdir.METRICS).read_text().splitlines()
  assert [json.loads(l)['step'] for l in lines] == [10, 20]
  workdir.write_json(f'{w}/{workdir.SUMMARY}', {'final_top1': 0.5})
  assert workdir.read_summary(w) == {'final_top1': 0.5}
  assert json.loads((root / 'runs/a' / workdir.SUMMARY).read_text()) == {'final_top1': 0.5}
  assert sorted(os.listdir(root / 'runs/a')) == [workdir.METRICS, workdir.SUMMARY]  # no temporary left behind
  assert seen  # the calls really went through the remote path


def test_config_check_reads_a_remote_workdir(bucket):
  root, _ = bucket
  w = 'gs://bucket/runs/b'
  epath.Path(w).mkdir(parents=True, exist_ok=True)
  from configs import digits_demo
  from refine_jax import spec as spec_lib
  config = digits_demo.get_config()
  spec = spec_lib.from_dict(spec_lib.as_dict(config))
  workdir.write_json(f'{w}/{workdir.CONFIG}', spec.as_dict())
  train.check_workdir(spec, w)  # same config: accepted
  config.seed = 1
  with pytest.raises(ConfigError, match=r'seed: 0 \(in workdir\) -> 1'):
    train.check_workdir(spec_lib.from_dict(spec_lib.as_dict(config)), w)
  assert (root / 'runs/b' / workdir.CONFIG).exists()
