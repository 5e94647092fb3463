"""Soak: SIGKILL the digits demo at N seeded random moments; every completed re-run must end bitwise equal to an
uninterrupted run (metrics.jsonl, summary.json, kept checkpoints, every array of the final checkpoint).

    PYTHONPATH=. python bench/soak_sigkill.py --kills 20 --kills_per_round 2 --seed 0 --budget_s 1800

Rounds of: a fresh workdir; launch, SIGKILL a random 0..`--max_delay_s` seconds after training starts (the
tensorboard/ directory appears), re-launch the same command, ... (`--kills_per_round` kills; after each, every
eval row written so far must be the reference's) until a launch finishes; then compare with the reference.
Stops when `--kills` kills are done or the time budget is spent (what was done is reported). Uses
test_resume's helpers (the same ARGS: 66 steps, checkpoints every 8) and a shared compilation cache.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import time

from tests import conftest, test_resume as tr


def _started(w: str) -> bool:
  return os.path.isdir(os.path.join(w, 'tensorboard'))


def _round(w: str, rng: random.Random, kills_left: int, max_delay: float, ref: dict) -> tuple[int, int]:
  """(kills, launches) of one chain ending in a finished launch."""
  kills = launches = 0
  while True:
    r = tr.Run(w, *tr.ARGS)
    launches += 1
    if kills < kills_left:
      deadline = time.monotonic() + tr.TIMEOUT_S
      while r.alive() and not _started(w) and time.monotonic() < deadline:
        time.sleep(tr.POLL_S)
      time.sleep(rng.uniform(0, max_delay))
      if r.alive():
        r.kill(signal.SIGKILL)
        kills += 1
        tr.assert_rows_on_reference_path(tr.rows_tolerant(w), ref, f'after kill {kills}')
        continue
    assert r.wait() == 0, r.tail()
    return kills, launches


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--kills', type=int, default=20)
  ap.add_argument('--kills_per_round', type=int, default=2)
  ap.add_argument('--seed', type=int, default=0)
  ap.add_argument('--budget_s', type=float, default=1800)
  ap.add_argument('--max_delay_s', type=float, default=6.0)
  a = ap.parse_args()
  root = tempfile.mkdtemp(prefix='soak_')
  env = conftest.env_for()
  env.update(JAX_COMPILATION_CACHE_DIR=os.path.join(root, 'xla_cache'), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')
  tr._ENV.update(env)  # noqa: SLF001 - the helpers' subprocess environment
  t0, rng = time.monotonic(), random.Random(a.seed)
  ref_w = os.path.join(root, 'ref')
  tr.run(ref_w, *tr.ARGS)
  state, meta = tr.load_checkpoint(tr.ckpt_dir(ref_w), tr.TOTAL)
  ref = {'rows': tr.read_rows(ref_w), 'summary': tr.read_summary(ref_w), 'steps': tr.steps(ref_w),
         'state': state, 'meta': meta}
  done, rounds, launches = 0, 0, 0
  while done < a.kills and time.monotonic() - t0 < a.budget_s:
    w = os.path.join(root, f'round{rounds}')
    k, n = _round(w, rng, min(a.kills - done, a.kills_per_round), a.max_delay_s, ref)
    tr.assert_equals_reference(w, ref)  # raises on any difference
    done, rounds, launches = done + k, rounds + 1, launches + n
    print(json.dumps({'round': rounds, 'kills': k, 'launches': n, 'equal': True}), flush=True)
  print(json.dumps({'kills': done, 'rounds': rounds, 'launches': launches, 'all_equal': True, 'seed': a.seed,
                    'seconds': round(time.monotonic() - t0)}))


if __name__ == '__main__':
  main()
