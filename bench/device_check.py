"""The prepared accelerator benchmark behind bench/device_check.sh: the real training loop against its bare step and
a resumed run against an uninterrupted one, our jitted train step against the same model in PyTorch on the same
device, batch and precision, plus the cost of on-device mixing.

    bash bench/device_check.sh [--smoke] [--budget_s=450] [--peak_tflops=N]      # the usual way
    python -m bench.device_check --out=DIR [--smoke] ...                          # what the script runs

Four halves, each in its own process so that each framework has the whole device to itself (JAX preallocates
most of a GPU's memory), run one after the other by `main`:
- `loop` (first: the most important): `python -m refine_jax.main` runs on `synthetic` data (`loop_plan`: Table 5's
  ResNet-50 and Table 1's PreActResNet-18 configs at the paper's cadence scaled to a short run), each against the
  bare step of the very same config (`bench.bench_loop.Bare`, timed in a process of its own before them), read
  from the runs' own clocks (timing.json, `bench.bench_loop.loop_figures`): the loop's images/s ÷ the bare
  step's, the shares of evaluation with the R̂ / R̂aug diagnostics and of blocking checkpoint saves, the peak
  device memory. Then the resume check (`resume_checks`): the PreActResNet-18 run stopped by SIGTERM after its
  first eval and re-run, against the uninterrupted run, without and with --xla_gpu_deterministic_ops=true: are
  the final train states bit for bit equal, and what does the flag cost in the loop's step time.
- `jax`: per case, the Env training builds (`bench.common.step_env`), the state made by `jax.jit(init_state,
  out_shardings=replicated)` and the batch put on the `data` axis of the mesh (`NamedSharding`), the step
  `jax.jit(train_step, donate_argnums=0)` — exactly as `refine_jax.train` does — lowered and compiled once; the
  model FLOPs of one step (the TFLOP/s and MFU numerator) counted from the step's jaxpr by `refine_jax.flops`
  (matrix products and convolutions, forward and backward, PyTorch's flop counter's convention), with XLA's cost
  analysis of the compiled and the lowered step beside it for reference only (on GPU the compiled one misses the
  cuDNN convolutions). Right after the case the mixing block
  shares (its `none`), Mixup / CutMix / Manifold Mixup, timed interleaved with it round by round.
- `torch`: the same models (bench/torch_step.get_model; torchvision's ResNet-50) in eager PyTorch, bf16
  autocast, channels_last, the same SGD (lr 0.01, Nesterov momentum 0.9, weight decay 5e-4), the same uint8
  batch normalised inside the step; model FLOPs of one step from torch.utils.flop_counter (an independent
  count beside ours).
- `torch_compile`: the ResNet-50 case again with `torch.compile(model)`, in a process of its own under a
  timeout; a failure or a timeout is recorded, not fatal.

Timing, both sides alike: the first step (random init, step 0) gives the first-step loss; `warmup` more steps
are run untimed; then `rounds` rounds of `steps` steps each, with no host sync inside a round and one
`block_until_ready` (JAX, on the whole new state and the loss) or `torch.cuda.synchronize` (PyTorch) at each
round's start and end; the reported step time is the median over rounds of round time ÷ steps.

Each half writes its JSON after every case (a half stopped by its time limit keeps what it measured);
`main` merges them into OUT/device_check.json, prints the table and writes it to OUT/device_check.md.
`--smoke` runs the same code on tiny batches and images, one timed step each (CPU, in tests).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# H200 SXM dense bf16 (no sparsity) from NVIDIA's data sheet; the H100 SXM shares it. KINDS.md
# (/work/.library/device) measured about 790 TFLOP/s on an 8192³ bf16 matmul through PyTorch on the lent H200.
SPEC_PEAK_BF16 = {'H200': 989.4, 'H100': 989.4}
MEASURED_MATMUL_BF16 = {'H200': 790.0}
MEAN, STD = (0.5,) * 3, (0.25,) * 3  # bench.common.step_env's normalisation; the PyTorch side uses the same
MIX_KINDS = ('none', 'mixup', 'cutmix', 'manifold_mixup')
FLOPS_SOURCE = ('refine_jax.flops: the jaxpr\'s matrix products and convolutions, forward and backward, '
                '2 per multiply-add')


def plan(smoke: bool) -> dict:
  """The cases: (model, batch, image size, classes). Smoke: the same code on tiny sizes, ResNet-50 (torchvision's
  on the PyTorch side) and PreActResNet-18 only (WRN-28-10 runs the same code, and its compile would double the
  smoke's time on a 2-core CPU)."""
  if smoke:
    return {'dtype': 'bfloat16', 'warmup': 0, 'rounds': 1, 'steps': 1,
            'cases': [('resnet50', 2, 32, 10), ('preact_resnet18', 2, 16, 10)],
            'mixing': ('preact_resnet18', 2, 16, 10), 'compile_case': ('preact_resnet18', 2, 16, 10)}
  return {'dtype': 'bfloat16', 'warmup': 3, 'rounds': 5, 'steps': 10,
          'cases': [('resnet50', 256, 224, 1000), ('preact_resnet18', 128, 32, 10), ('preact_resnet18', 512, 32, 10),
                    ('wide_resnet28_10', 128, 32, 10), ('wide_resnet28_10', 512, 32, 10)],
          'mixing': ('preact_resnet18', 128, 32, 10), 'compile_case': ('resnet50', 256, 224, 1000)}


def case_key(model: str, batch: int, size: int, classes: int) -> str:
  return f'{model}/b{batch}/{size}px/c{classes}'


def host_batch(batch: int, size: int, classes: int):
  """The uint8 NHWC images and int32 labels both sides train on (one seed)."""
  import numpy as np
  rng = np.random.default_rng(0)
  return (rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
          rng.integers(0, classes, (batch,), dtype=np.int32))


def write_json(path: str, obj) -> None:
  """Strict JSON (a value that could not be measured is null, never NaN), written whole."""
  from refine_jax import workdir
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(workdir.finite_or_none(obj), f, indent=1, allow_nan=False)
  os.replace(tmp, path)


def _time_rounds(run_steps, sync, rounds: int, steps: int) -> list[float]:
  out = []
  for _ in range(rounds):
    sync()
    t = time.perf_counter()
    run_steps(steps)
    sync()
    out.append((time.perf_counter() - t) / steps)
  return out


# ---------------------------------------------------------------------------------------------------- JAX half

class OurStep:
  """One compiled train step of ours, built as refine_jax.train builds it."""

  def __init__(self, model: str, batch: int, size: int, classes: int, dtype: str, kind: str = 'none'):
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from bench import common
    from refine_jax import flops
    from refine_jax import steps
    self.jax = jax
    env, phase = common.step_env(model, classes, dtype=dtype, kind=kind)
    repl, data = NamedSharding(env.mesh, P()), NamedSharding(env.mesh, P('data'))
    self.state = jax.jit(functools.partial(steps.init_state, env, (size, size, 3)), static_argnums=0,
                         out_shardings=repl)(0)
    self.params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params))
    images, labels = host_batch(batch, size, classes)
    self.batch = jax.device_put({'image': images, 'label': labels}, data)
    step_fn = jax.jit(functools.partial(steps.train_step, env, phase.mix), donate_argnums=0)
    t = time.perf_counter()
    lowered = step_fn.lower(self.state, self.batch)
    self.fn = lowered.compile()  # the executable a call of step_fn would build and run
    self.compile_s = time.perf_counter() - t
    # The MFU's FLOPs, counted from the step's jaxpr (traced, not run: the donated state stays valid); XLA's
    # cost analysis of the compiled and the lowered step for reference only.
    self.flops = float(flops.count(step_fn, self.state, self.batch))
    self.xla_flops, self.xla_flops_lowered = _xla_flops(self.fn.cost_analysis()), _xla_flops(lowered.cost_analysis())
    self.state, loss = self.fn(self.state, self.batch)
    self.first_loss = float(loss)  # random init, step 0

  def run(self, n: int) -> None:
    for _ in range(n):
      self.state, self.loss = self.fn(self.state, self.batch)

  def sync(self) -> None:
    self.jax.block_until_ready(self.state)


def _xla_flops(cost) -> float:
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost.get('flops', 0.0)) if cost else 0.0


def jax_half(a, p: dict, path: str) -> None:
  import jax
  res = {'backend': jax.default_backend(), 'device_kind': jax.devices()[0].device_kind,
         'device_count': jax.device_count(), 'jax': jax.__version__, 'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'steps': {}, 'mixing': {}, 'skipped': []}
  try:
    import flax
    res['flax'] = flax.__version__
  except ImportError:
    pass
  write_json(path, res)
  t0 = deadline = time.time()
  deadline += a.start_cases_s
  for model, batch, size, classes in p['cases']:
    key = case_key(model, batch, size, classes)
    if time.time() > deadline:
      res['skipped'].append(key)
      continue
    s = OurStep(model, batch, size, classes, p['dtype'])
    s.run(p['warmup'])
    t = _time_rounds(s.run, s.sync, p['rounds'], p['steps'])
    res['steps'][key] = {'model': model, 'batch': batch, 'size': size, 'classes': classes, 'dtype': p['dtype'],
                         'step_s': t, 'median_step_s': statistics.median(t), 'flops_per_step': s.flops,
                         'xla_flops': s.xla_flops, 'xla_flops_lowered': s.xla_flops_lowered, 'compile_s': s.compile_s,
                         'first_loss': s.first_loss, 'params': s.params}
    print(f'jax  {key}: {batch / statistics.median(t):,.1f} images/s, first loss {s.first_loss:.4f}, '
          f'compile {s.compile_s:.1f} s (at {time.time() - t0:.0f} s)', flush=True)
    write_json(path, res)
    if (model, batch, size, classes) == tuple(p['mixing']):  # the mixing block next, this step as its 'none'
      mixing_half(p, s, res, deadline)
      medians = ', '.join(f'{k} {v["median_step_s"]:.5f}' for k, v in res['mixing'].items())
      print(f'jax  mixing, median step (s): {medians} (at {time.time() - t0:.0f} s)', flush=True)
      write_json(path, res)
    del s
  res['tensorflow_modules'] = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets'))
  # What the step path pulled in beyond the standard library and this repository: each must be on the lent
  # machine or travel as a wheel (bench/device_check.sh's WHEELS).
  tops = {m.split('.')[0] for m in sys.modules}
  not_packages = {'refine_jax', 'configs', 'bench', 'cython_runtime', 'sitecustomize', 'usercustomize'}
  res['third_party_modules'] = sorted(m for m in tops - set(sys.stdlib_module_names) - not_packages
                                      if not m.startswith('_'))
  write_json(path, res)


def mixing_half(p: dict, none: OurStep, res: dict, deadline: float) -> None:
  """Mixup / CutMix / Manifold Mixup against `none` (the step row's executable), timed interleaved round by round
  so that drifts hit every kind alike."""
  model, batch, size, classes = p['mixing']
  by_kind = {'none': none}
  for kind in MIX_KINDS[1:]:
    if time.time() > deadline:
      res['skipped'].append(f'mixing/{kind}')
      continue
    by_kind[kind] = OurStep(model, batch, size, classes, p['dtype'], kind)
    by_kind[kind].run(p['warmup'])
  times = {k: [] for k in by_kind}
  for _ in range(p['rounds']):
    for k, s in by_kind.items():
      times[k] += _time_rounds(s.run, s.sync, 1, p['steps'])
  for k, t in times.items():
    res['mixing'][k] = {'model': model, 'batch': batch, 'size': size, 'step_s': t,
                        'median_step_s': statistics.median(t), 'first_loss': by_kind[k].first_loss}


# ------------------------------------------------------------------------------------------------ PyTorch half

class TorchStep:
  """The same model's SGD step in PyTorch: bf16 autocast, channels_last, the uint8 batch normalised inside."""

  def __init__(self, model: str, batch: int, size: int, classes: int, bf16: bool, compile_model: bool = False):
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode
    from bench.torch_step import get_model
    self.torch = torch
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest kernels, as XLA autotunes its convolutions
    self.dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = get_model(model, classes).to(self.dev).to(memory_format=torch.channels_last)
    self.params = sum(q.numel() for q in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    fwd = torch.compile(net) if compile_model else net
    images, labels = host_batch(batch, size, classes)
    u8 = torch.from_numpy(images).to(self.dev).permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
    y = torch.from_numpy(labels).long().to(self.dev)
    mean = torch.tensor(MEAN, device=self.dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=self.dev).view(1, 3, 1, 1)

    def step():
      x = ((u8.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)
      with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(fwd(x).float(), y)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
      return loss

    self.step = step
    net.train()
    t = time.perf_counter()
    if compile_model:  # the first call compiles; FlopCounterMode would not see inside the compiled graph
      self.first_loss, self.flops = float(step().detach()), None
    else:
      with FlopCounterMode(display=False) as fc:
        self.first_loss = float(step().detach())
      self.flops = float(fc.get_total_flops())
    self.sync()
    self.first_step_s = time.perf_counter() - t

  def run(self, n: int) -> None:
    for _ in range(n):
      self.step()

  def sync(self) -> None:
    if self.dev.type == 'cuda':
      self.torch.cuda.synchronize()


def torch_half(a, p: dict, path: str, compile_model: bool) -> None:
  import torch
  res = {'torch': torch.__version__, 'device': 'cuda' if torch.cuda.is_available() else 'cpu',
         'device_name': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu',
         'threads': torch.get_num_threads(), 'bf16_autocast': p['dtype'] == 'bfloat16', 'channels_last': True,
         'compile': compile_model, 'steps': {}, 'skipped': []}
  try:
    import torchvision
    res['torchvision'] = torchvision.__version__
  except ImportError:
    pass
  write_json(path, res)
  cases = [p['compile_case']] if compile_model else p['cases']
  deadline = time.time() + a.start_cases_s
  for model, batch, size, classes in cases:
    key = case_key(model, batch, size, classes)
    if time.time() > deadline:
      res['skipped'].append(key)
      continue
    s = TorchStep(model, batch, size, classes, p['dtype'] == 'bfloat16', compile_model)
    s.run(p['warmup'])
    t = _time_rounds(s.run, s.sync, p['rounds'], p['steps'])
    res['steps'][key] = {'step_s': t, 'median_step_s': statistics.median(t), 'flops_per_step': s.flops,
                         'first_loss': s.first_loss, 'first_step_s': s.first_step_s, 'params': s.params}
    print(f'torch{" compile" if compile_model else ""} {key}: {batch / statistics.median(t):,.1f} images/s, '
          f'first loss {s.first_loss:.4f}', flush=True)
    write_json(path, res)
    del s
    if torch.cuda.is_available():
      torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ the loop half

DETERMINISTIC_FLAG = '--xla_gpu_deterministic_ops=true'
LOOP_SHARE = 0.55  # of --budget_s: the loop half's limit (its runs each start and compile a process)


def loop_plan(smoke: bool) -> list[dict]:
  """The real-loop cases: `python -m refine_jax.main` on `synthetic` data, as a user runs it on a machine without
  TensorFlow, each against the bare step of its own config (`bench.bench_loop.Bare`).

  Full: Table 5's ResNet-50 (configs/imagenet_r50_mixup.py: batch 256, 224 px, Mixup γ = 0.2, 1000 classes) and
  Table 1's PreActResNet-18 (configs/cifar10_preact18_mixup.py: batch 128, 32 px, Mixup γ = 1), both bfloat16, at
  the paper's cadence scaled to a short run: an eval (test metrics, R̂, R̂aug) every epoch, the phase switch, the
  phase-end diagnostics, checkpoints. Data scaled 1:250 (ResNet-50: 5,120 training images = 20 steps an epoch,
  256 test, one eval batch of diagnostics for the paper's 10,000) and 1:10 (PreActResNet-18: 5,120 = 40 steps an
  epoch, 1,024 test, one eval batch of diagnostics for 2,000), 4 + 1 and 8 + 1 epochs; a checkpoint every epoch
  and every 2 epochs (the configs: 5 and 10), so that saves get timed. The resume check re-runs the last case.
  Smoke: the same configs and code with resnet_tiny at 16 px, batch 8, 4 steps an epoch, 6 + 1 epochs, float32.
  """
  synthetic = {'dataset': 'synthetic', 'pp_eval': '', 'phases.augmented.pp': '', 'phases.refine.pp': '',
               'phases.augmented.lr.boundaries_epochs': (), 'dtype': 'bfloat16', 'phases.refine.epochs': 1.0}
  cases = [
      {'name': 'loop/resnet50/b256/224px', 'config': 'imagenet_r50_mixup', 'overrides': {
          **synthetic, 'synthetic.num_classes': 1000, 'synthetic.train_examples': 5120,
          'synthetic.eval_examples': 256, 'eval_batch_size': 256, 'diag_examples': 256,
          'phase_end_diag_examples': 256, 'phases.augmented.epochs': 4.0, 'checkpoint_every_epochs': 1.0}},
      {'name': 'loop/preact_resnet18/b128/32px', 'config': 'cifar10_preact18_mixup', 'overrides': {
          **synthetic, 'synthetic.train_examples': 5120, 'synthetic.eval_examples': 1024, 'eval_batch_size': 256,
          'diag_examples': 256, 'phase_end_diag_examples': 256, 'phases.augmented.epochs': 8.0,
          'checkpoint_every_epochs': 2.0}},
  ]
  if not smoke:
    return cases
  tiny = {'model': 'resnet_tiny', 'image_size': 16, 'batch_size': 8, 'eval_batch_size': 8, 'diag_examples': 8,
          'phase_end_diag_examples': 8, 'synthetic.train_examples': 32, 'synthetic.eval_examples': 16,
          'dtype': 'float32', 'phases.augmented.epochs': 6.0, 'checkpoint_every_epochs': 1.0}
  return [{**c, 'name': f'loop/{c["config"]}/resnet_tiny/b8/16px', 'overrides': {**c['overrides'], **tiny}}
          for c in cases]


def loop_config(case: dict):
  """The ConfigDict that the case's `python -m refine_jax.main` run trains: its config file with its overrides."""
  import importlib
  c = importlib.import_module(f'configs.{case["config"]}').get_config()
  c.update_from_flattened_dict(case['overrides'])
  return c


def loop_args(case: dict) -> list[str]:
  """The case's `refine_jax.main` flags: its config file and one --config.FIELD=VALUE per override."""
  def value(v):
    return '(' + ''.join(f'{x},' for x in v) + ')' if isinstance(v, tuple) else str(v)
  return [f'--config={os.path.join(ROOT, "configs", case["config"] + ".py")}'] + [
      f'--config.{k}={value(v)}' for k, v in case['overrides'].items()]


def loop_bare_half(a, path: str) -> None:
  """The bare step of every loop case's config (`bench_loop.Bare`: the loop's own Env and first-phase step on one
  device-resident batch), timed as the step rows are; a process of its own, run before the loops."""
  import jax
  from bench import bench_loop
  from refine_jax import spec as spec_lib
  p = plan(a.smoke)
  res = {'backend': jax.default_backend(), 'cases': {}}
  for case in loop_plan(a.smoke):
    c = loop_config(case)
    t = time.perf_counter()
    bare = bench_loop.Bare(c, c.synthetic.train_examples // c.batch_size, c.image_size, c.synthetic.num_classes)
    compile_s = time.perf_counter() - t
    if p['warmup']:
      bare.run(p['warmup'])
    ips = [bare.run(p['steps']) for _ in range(p['rounds'])]
    res['cases'][case['name']] = {'images_per_s': statistics.median(ips), 'rounds': ips, 'compile_s': compile_s,
                                  'config': spec_lib.as_dict(c)}
    print(f'bare {case["name"]}: {statistics.median(ips):,.1f} images/s (compile {compile_s:.1f} s)', flush=True)
    write_json(path, res)
    del bare


def _child_env(base: dict, cache: str = '', xla_flags: str = '') -> dict:
  """The environment of a child of the loop half: `base` (the half's own before it hid the device from itself),
  with a persistent compilation cache and extra XLA flags."""
  env = dict(base)
  if cache:
    env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')
  if xla_flags:
    env['XLA_FLAGS'] = f'{env.get("XLA_FLAGS", "")} {xla_flags}'.strip()
  return env


def _main_run(case: dict, workdir: str, env: dict, timeout_s: float, stop_after_first_eval: bool = False) -> dict:
  """`python -m refine_jax.main` of `case` into `workdir` (output appended to `workdir`.log); with
  `stop_after_first_eval`, SIGTERM as soon as its first eval row is written (a preemption mid-phase). Its exit
  code (None: killed at `timeout_s`), wall seconds and, when it failed, the end of its output."""
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--workdir={workdir}'] + loop_args(case)
  t, rows = time.perf_counter(), os.path.join(workdir, 'metrics.jsonl')
  deadline = t + max(1.0, timeout_s)
  with open(workdir + '.log', 'a') as out:
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    while stop_after_first_eval and p.poll() is None and time.perf_counter() < deadline:
      if os.path.exists(rows) and os.path.getsize(rows):
        p.send_signal(signal.SIGTERM)
        break
      time.sleep(0.02)
    try:
      rc = p.wait(timeout=max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()
      rc = None
  got = {'rc': rc, 'wall_s': time.perf_counter() - t}
  if rc not in (0, 3 if stop_after_first_eval else 0):
    got['output_tail'] = open(workdir + '.log').read()[-1500:]
  return got


def _final_state(workdir: str) -> tuple[str, dict, int]:
  """(SHA-256 of the whole train state, {name: parameter array}, step) of a run's newest checkpoint, read on this
  process's CPU and verified against the checksum saved with it."""
  import jax
  import numpy as np
  from refine_jax import checkpoint as ckpt_lib
  with ckpt_lib.Checkpoints(os.path.join(workdir, 'checkpoints'), read_only=True) as c:
    state, meta = c.restore_raw(c.steps()[-1])
  params = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(state['params'])[0]}
  return ckpt_lib.digest(state), params, int(meta['step'])


def _compare(ref_w: str, w: str) -> dict:
  """The final train states of two runs: bit for bit equal (the whole state; the parameters), and how far apart."""
  import numpy as np
  da, pa, sa = _final_state(ref_w)
  db, pb, sb = _final_state(w)
  differ = sorted(k for k in pa if pa[k].tobytes() != pb[k].tobytes())
  far = max((float(np.max(np.abs(pa[k].astype(np.float64) - pb[k].astype(np.float64)))) for k in differ), default=0.0)
  return {'final_steps': [sa, sb], 'state_bitwise_equal': da == db, 'params_bitwise_equal': not differ,
          'params_arrays': len(pa), 'params_arrays_differing': len(differ), 'params_max_abs_diff': far,
          'first_differing': differ[:3]}


def resume_check(case: dict, ref_w: str, w: str, env: dict, timeout_s: float) -> dict:
  """`case` stopped by SIGTERM once its first eval row is written (mid-phase: it saves and exits 3) and re-run
  (it resumes from that checkpoint and trains to the end), against the uninterrupted run in `ref_w`."""
  from refine_jax import workdir as workdir_lib
  t = time.perf_counter()
  first = _main_run(case, w, env, timeout_s, stop_after_first_eval=True)
  ckpts = os.path.join(w, 'checkpoints')
  stopped = max((int(n) for n in os.listdir(ckpts) if n.isdigit()), default=None) if os.path.isdir(ckpts) else None
  out = {'interrupted': first, 'stopped_at_step': stopped,
         'phase_end_step': workdir_lib.read_summary(ref_w)['phases']['augmented']['end_step']}
  out['mid_phase'] = stopped is not None and 0 < stopped < out['phase_end_step']
  if first['rc'] != 3:
    return out
  out['resumed'] = _main_run(case, w, env, timeout_s - (time.perf_counter() - t))
  if out['resumed']['rc'] == 0:
    out['resumed_images'] = workdir_lib.read_json(workdir_lib.path(w, workdir_lib.TIMING))['images']
    out.update(_compare(ref_w, w))
  return out


def loop_half(a, path: str) -> None:
  """The loop cases against their bare steps, then the resume check without and with `DETERMINISTIC_FLAG` (and the
  flag's cost in the loop's step time), in that order of importance; what has not started by `--start_cases_s` is
  listed as skipped. The runs' workdirs lie under OUT/work (removed by `main` unless --keep_work)."""
  from absl import logging
  base = dict(os.environ)
  os.environ['JAX_PLATFORMS'] = 'cpu'  # this process reads checkpoints only: the device belongs to its children
  logging.set_verbosity(logging.ERROR)  # Orbax's notes on opening checkpoints read-only
  t0 = time.time()
  times = {'t0': t0, 'deadline': t0 + a.start_cases_s, 'end': t0 + a.start_cases_s / 0.8}  # the half's limit
  work = os.path.join(a.out, 'work')
  shutil.rmtree(work, ignore_errors=True)
  os.makedirs(work)
  cache = os.path.join(work, 'jax_cache')
  res = {'cases': {}, 'resume': {}, 'skipped': []}
  write_json(path, res)
  try:
    res['bare_rc'] = subprocess.run([sys.executable, '-m', 'bench.device_check', '--half=loop_bare', f'--out={work}']
                                    + (['--smoke'] if a.smoke else []), cwd=ROOT, env=_child_env(base, cache),
                                    timeout=times['end'] - time.time()).returncode
  except subprocess.TimeoutExpired:
    res['bare_rc'] = None  # killed at the half's limit: the loop rows go without their ratio
  bare_path = os.path.join(work, 'loop_bare.json')
  bare = json.load(open(bare_path))['cases'] if os.path.exists(bare_path) else {}
  cases = loop_plan(a.smoke)
  runs = loop_runs(cases, bare, work, _child_env(base, cache), res, path, times)
  if cases[-1]['name'] in runs:
    resume_checks(cases[-1], runs[cases[-1]['name']], work, base, res, path, times)
  else:
    res['skipped'] += ['resume/default', 'resume/deterministic_ops']
  write_json(path, res)


def loop_runs(cases: list[dict], bare: dict, work: str, env: dict, res: dict, path: str, times: dict) -> dict:
  """Runs each loop case (`python -m refine_jax.main`) and reads its clock; {case name: workdir} of those that
  finished."""
  from bench import bench_loop
  from refine_jax import fields
  from refine_jax import workdir as workdir_lib
  runs = {}
  for case in cases:
    name = case['name']
    if time.time() > times['deadline']:
      res['skipped'].append(name)
      continue
    w, c = os.path.join(work, name.replace('/', '_')), loop_config(case)
    row = {'config': f'configs/{case["config"]}.py', 'overrides': case['overrides'], 'model': c.model,
           'batch': c.batch_size, 'image_size': c.image_size, 'classes': c.synthetic.num_classes, 'dtype': c.dtype,
           **_main_run(case, w, env, times['end'] - time.time())}
    if row['rc'] == 0:
      runs[name] = w
      row.update(bench_loop.loop_figures(workdir_lib.read_json(workdir_lib.path(w, workdir_lib.TIMING))))
      if name in bare:
        config = {k: v for k, v in workdir_lib.read_config(w).items() if k not in fields.RECORDS}  # the run's facts
        row.update(bare_images_per_s=bare[name]['images_per_s'], loop_over_bare=row['ips'] / bare[name]['images_per_s'],
                   config_differs_from_bare=[k for k, _, _ in fields.differences(bare[name]['config'], config, ())])
    res['cases'][name] = row
    nan = float('nan')
    print(f'{name}: {row.get("ips", nan):,.1f} images/s in the loop, {row.get("loop_over_bare", nan):.3f} of the bare '
          f'step (at {time.time() - times["t0"]:.0f} s)', flush=True)
    write_json(path, res)
  return runs


def resume_checks(case: dict, ref_w: str, work: str, base: dict, res: dict, path: str, times: dict) -> None:
  """`resume_check` of `case` without any flag (against its loop run) and with `DETERMINISTIC_FLAG` (against an
  uninterrupted run under the flag, whose clock gives the flag's cost), each started only with time for it."""
  from bench import bench_loop
  from refine_jax import workdir as workdir_lib
  ips = {}
  for label, flag in (('default', ''), ('deterministic_ops', DETERMINISTIC_FLAG)):
    walls = [res['cases'][case['name']]['wall_s']] + [r['wall_s'] for k, r in res['resume'].get('default', {}).items()
                                                     if k in ('interrupted', 'resumed')]
    if time.time() > times['deadline'] or (flag and times['end'] - time.time() < 1.2 * sum(walls)):
      res['skipped'].append(f'resume/{label}')
      continue
    # No compilation cache: each process compiles (and autotunes) afresh, as a resumed job does.
    env, w = _child_env(base, '', flag), os.path.join(work, f'resume_{label}')
    check = {'xla_flags': flag}
    if flag:
      ref_w = w + '_uninterrupted'
      check['uninterrupted'] = _main_run(case, ref_w, env, times['end'] - time.time())
    if check.get('uninterrupted', {'rc': 0})['rc'] == 0:
      ips[label] = bench_loop.loop_figures(workdir_lib.read_json(workdir_lib.path(ref_w, workdir_lib.TIMING)))['ips']
      check.update(reference_images_per_s=ips[label], **resume_check(case, ref_w, w, env, times['end'] - time.time()))
    res['resume'][label] = check
    print(f'resume ({label}): stopped at step {check.get("stopped_at_step")}, final state bit for bit equal: '
          f'{check.get("state_bitwise_equal")} (at {time.time() - times["t0"]:.0f} s)', flush=True)
    write_json(path, res)
  if len(ips) == 2:  # > 1: the flag slows the loop's step
    res['resume']['deterministic_ops_step_time_ratio'] = ips['default'] / ips['deterministic_ops']
  if 'deterministic_ops' in res['resume'] and times['end'] - time.time() > 30:
    res['resume']['max_pool_gradient_under_flag'] = max_pool_probe(_child_env(base, '', DETERMINISTIC_FLAG))
    write_json(path, res)


# XLA documents that the flag makes compilation fail on select-and-scatter (no deterministic kernel), the gradient
# of a max pool: ResNet-50's stem has one, PreActResNet-18 (the resume check's model) none.
_MAX_POOL_GRADIENT = """
import flax.linen as nn, jax, jax.numpy as jnp
f = jax.jit(jax.grad(lambda x: nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))).sum()))
print('max-pool gradient sum', float(f(jnp.ones((2, 16, 16, 8), jnp.float32)).sum()))
"""


def max_pool_probe(env: dict) -> dict:
  """Whether a max pool's gradient (ResNet-50's stem) compiles and runs under `env`'s XLA flags: exit code and
  the end of the output."""
  try:
    p = subprocess.run([sys.executable, '-c', _MAX_POOL_GRADIENT], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
  except subprocess.TimeoutExpired:
    return {'rc': None, 'output_tail': 'timeout after 120 s'}
  return {'rc': p.returncode, 'output_tail': (p.stdout + p.stderr)[-600:]}


def loop_rows(lh: dict) -> list[dict]:
  """The loop half's cases as rows of device_check.json ('case' names them)."""
  return [{'case': name, **row} for name, row in lh.get('cases', {}).items()]


def loop_table(res: dict) -> str:
  """The loop rows and the resume check as markdown, for device_check.md."""
  def f(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else '—'
  lines = ['| loop case (model, batch, px, dtype) | loop images/s | bare step images/s | loop ÷ bare | eval + '
           'diagnostics share (steady) | blocking checkpoint share | s per eval / per save | peak device memory '
           '(GiB) |',
           '|---|---|---|---|---|---|---|---|']
  for r in res.get('loop', []):
    peak = r.get('peak_bytes_in_use')
    lines.append(f'| {r["case"]} ({r["model"]}, {r["batch"]}, {r["image_size"]}, {r["dtype"]}) | '
                 f'{f(r.get("ips"), ",.1f")} | {f(r.get("bare_images_per_s"), ",.1f")} | '
                 f'{f(r.get("loop_over_bare"), ".3f")} | {f(r.get("eval_share"), ".1%")} '
                 f'({f(r.get("eval_share_steady"), ".1%")}) | {f(r.get("save_share"), ".2%")} | '
                 f'{f(r.get("eval_s_each"), ".2f")} / {f(r.get("save_s_each"), ".3f")} | '
                 f'{f(peak / 2**30 if peak else None, ".1f")} |')
  for label in ('default', 'deterministic_ops'):
    c = res.get('resume', {}).get(label)
    if c:
      lines.append(f'\nResume ({label}{", " + c["xla_flags"] if c.get("xla_flags") else ""}): SIGTERM at step '
                   f'{c.get("stopped_at_step")} (phase ends at {c.get("phase_end_step")}), re-run; final state bit for '
                   f'bit equal to the uninterrupted run: {c.get("state_bitwise_equal")} (parameter arrays differing: '
                   f'{c.get("params_arrays_differing")} of {c.get("params_arrays")}, max |diff| '
                   f'{f(c.get("params_max_abs_diff"), ".3g")}).')
  probe = res.get('resume', {}).get('max_pool_gradient_under_flag')
  if probe:
    lines.append(f'\nA max pool\'s gradient (ResNet-50\'s stem) under {DETERMINISTIC_FLAG}: '
                 f'{"compiles and runs" if probe["rc"] == 0 else "fails: " + probe["output_tail"][-200:]}.')
  ratio = res.get('resume', {}).get('deterministic_ops_step_time_ratio')
  if ratio:
    lines.append(f'\n{DETERMINISTIC_FLAG}: the loop\'s step time with it ÷ without it: {ratio:.3f} (from the two '
                 'uninterrupted runs\' clocks).')
  return '\n'.join(lines)


# -------------------------------------------------------------------------------------------------- the driver

def _peak(device_kind: str, override):
  if override:
    return float(override), f'--peak_tflops={override}'
  for name, v in SPEC_PEAK_BF16.items():
    if name in device_kind:
      return v, f'NVIDIA {name} SXM dense bf16 spec'
  return None, 'unknown for this device (pass --peak_tflops)'


def _run_half(a, half: str, timeout_s: float, log) -> dict:
  """Runs one half in its own process under a time limit; returns its status and whatever JSON it wrote."""
  path = os.path.join(a.out, f'{half}.json')
  if os.path.exists(path):
    os.remove(path)
  cmd = [sys.executable, '-m', 'bench.device_check', f'--half={half}', f'--out={a.out}',
         f'--start_cases_s={0.8 * timeout_s:.0f}'] + (['--smoke'] if a.smoke else [])
  t = time.perf_counter()
  status = 'ok'
  # Its own process group, so that a timeout also ends what it started (torch.compile's worker processes). Its
  # output is logged line by line as it comes, so that a run cut short still shows how far it got.
  p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       start_new_session=True)
  lines = []

  def pump():
    for line in p.stdout:
      lines.append(line.rstrip())
      log(lines[-1])

  reader = threading.Thread(target=pump, daemon=True)
  reader.start()
  try:
    p.wait(timeout=max(1.0, timeout_s))
    reader.join(timeout=30)
    if p.returncode:
      status = f'failed (exit {p.returncode}): ' + ' | '.join(lines[-3:])[-600:]
  except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    reader.join(timeout=30)
    status = f'timeout after {timeout_s:.0f} s'
  res = json.load(open(path)) if os.path.exists(path) else {}
  res['status'], res['wall_s'] = status, time.perf_counter() - t
  log(f'[{half}] {status}, {res["wall_s"]:.1f} s')
  return res


def merge(p: dict, j: dict, t: dict, tc: dict, peak, peak_source: str, measured) -> dict:
  rows = []
  for model, batch, size, classes in p['cases']:
    key = case_key(model, batch, size, classes)
    o, q = j.get('steps', {}).get(key), t.get('steps', {}).get(key)
    r = {'case': key, 'model': model, 'batch': batch, 'size': size, 'classes': classes, 'dtype': p['dtype'],
         'ln_classes': math.log(classes)}
    if o:
      ips = batch / o['median_step_s']
      tflops = o['flops_per_step'] / o['median_step_s'] / 1e12
      r.update({'ours_step_s': o['median_step_s'], 'ours_images_per_s': ips, 'ours_model_tflops': tflops,
                'ours_mfu': tflops / peak if peak else None,
                'ours_mfu_vs_measured_matmul': tflops / measured if measured else None,
                'ours_flops_per_step': o['flops_per_step'], 'ours_flops_source': FLOPS_SOURCE,
                'ours_xla_flops_per_step': o['xla_flops'], 'ours_xla_flops_lowered': o['xla_flops_lowered'],
                'ours_first_loss': o['first_loss'], 'ours_params': o['params'], 'ours_compile_s': o['compile_s']})
    if q:
      tflops = q['flops_per_step'] / q['median_step_s'] / 1e12
      r.update({'torch_step_s': q['median_step_s'], 'torch_images_per_s': batch / q['median_step_s'],
                'torch_model_tflops': tflops, 'torch_mfu': tflops / peak if peak else None,
                'torch_flops_per_step': q['flops_per_step'], 'torch_first_loss': q['first_loss'],
                'torch_params': q['params']})
    if o and q:
      r['ours_over_torch'] = r['ours_images_per_s'] / r['torch_images_per_s']
      # Our count of our step over PyTorch's FLOP counter on the same model and batch (both: matrix products and
      # convolutions, forward and backward): the check of the MFU's numerator. XLA's count over it for reference.
      tq = q['flops_per_step']
      r['ours_flops_over_torch'] = o['flops_per_step'] / tq if tq else None
      r['flops_xla_over_torch_counter'] = o['xla_flops'] / tq if tq else None
    c = tc.get('steps', {}).get(key)
    if c:
      r.update({'torch_compile_step_s': c['median_step_s'], 'torch_compile_images_per_s': batch / c['median_step_s'],
                'torch_compile_first_step_s': c['first_step_s']})
      if o:
        r['ours_over_torch_compile'] = r['ours_images_per_s'] / r['torch_compile_images_per_s']
    rows.append(r)
  mix = []
  base = j.get('mixing', {}).get('none')
  for k in MIX_KINDS:
    m = j.get('mixing', {}).get(k)
    if m:
      mix.append({'kind': k, 'model': m['model'], 'batch': m['batch'], 'size': m['size'],
                  'median_step_s': m['median_step_s'], 'images_per_s': m['batch'] / m['median_step_s'],
                  'vs_none': m['median_step_s'] / base['median_step_s'] if base else None,
                  'first_loss': m['first_loss']})
  return {'steps': rows, 'mixing': mix}


def table(res: dict) -> str:
  def f(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else '—'
  m = res['meta']
  lines = [f'| model (batch, px, {m["dtype"]}) | ours images/s | PyTorch eager images/s | ours / PyTorch | '
           'PyTorch compile images/s | our model TFLOP/s | ours MFU | PyTorch MFU | first loss ours / PyTorch (ln C) |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in res['steps']:
    lines.append(f'| {r["model"]} ({r["batch"]}, {r["size"]}) | {f(r.get("ours_images_per_s"), ",.1f")} | '
                 f'{f(r.get("torch_images_per_s"), ",.1f")} | {f(r.get("ours_over_torch"), ".2f")} | '
                 f'{f(r.get("torch_compile_images_per_s"), ",.1f")} | {f(r.get("ours_model_tflops"), ".3f")} | '
                 f'{f(r.get("ours_mfu"), ".1%")} | {f(r.get("torch_mfu"), ".1%")} | '
                 f'{f(r.get("ours_first_loss"), ".3f")} / {f(r.get("torch_first_loss"), ".3f")} ({r["ln_classes"]:.3f}) |')
  if res['mixing']:
    x = res['mixing'][0]
    lines += ['', f'| mixing ({x["model"]}, batch {x["batch"]}, {x["size"]} px) | median step (s) | images/s | vs none |',
              '|---|---|---|---|']
    lines += [f'| {x["kind"]} | {x["median_step_s"]:.5f} | {x["images_per_s"]:,.1f} | {f(x["vs_none"], ".3f")} |'
              for x in res['mixing']]
  lines += ['', f'Device: {m["jax_device"]} (JAX {m.get("jax")}, {m.get("jax_backend")}); PyTorch {m.get("torch")} on '
            f'{m.get("torch_device")}. Peak for MFU: {m["peak_tflops"]} TFLOP/s ({m["peak_source"]}). '
            f'XLA_FLAGS={m["xla_flags"]!r}. torch.compile: {m["torch_compile_status"]}. '
            f'Timing: {m["warmup"]} warm-up steps untimed, median of {m["rounds"]} rounds × {m["steps"]} steps.',
            '', f'Model FLOPs (TFLOP/s, MFU), ours from {FLOPS_SOURCE}; PyTorch\'s from torch.utils.flop_counter. '
            'Ours / PyTorch\'s count per row: ' + ', '.join(f(r.get('ours_flops_over_torch'), '.4f')
                                                            for r in res['steps']) + '.']
  return '\n'.join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--out', default=os.environ.get('OUT') or os.path.join(ROOT, 'bench', 'out', 'device_check'))
  ap.add_argument('--smoke', action='store_true', help='tiny batches and images, one timed step each (CPU tests)')
  ap.add_argument('--budget_s', type=float, default=450.0, help='wall-time budget of the whole check')
  ap.add_argument('--compile_timeout_s', type=float, default=180.0, help='limit of the torch.compile half')
  ap.add_argument('--peak_tflops', type=float, help='the chip\'s bf16 peak (default: the spec of a known GPU)')
  ap.add_argument('--no_torch', action='store_true', help='JAX half only')
  ap.add_argument('--no_torch_compile', action='store_true')
  ap.add_argument('--no_loop', action='store_true', help='without the real-loop half')
  ap.add_argument('--keep_work', action='store_true', help='keep the loop half\'s workdirs (OUT/work)')
  ap.add_argument('--half', choices=('jax', 'torch', 'torch_compile', 'loop', 'loop_bare'), help=argparse.SUPPRESS)
  ap.add_argument('--start_cases_s', type=float, default=1e9, help=argparse.SUPPRESS)  # a half's: no new case after
  a = ap.parse_args()
  os.makedirs(a.out, exist_ok=True)
  p = plan(a.smoke)
  if a.half == 'jax':
    return jax_half(a, p, os.path.join(a.out, 'jax.json'))
  if a.half in ('loop', 'loop_bare'):
    return (loop_half if a.half == 'loop' else loop_bare_half)(a, os.path.join(a.out, f'{a.half}.json'))
  if a.half:
    return torch_half(a, p, os.path.join(a.out, f'{a.half}.json'), a.half == 'torch_compile')

  t0 = time.time()
  logf = open(os.path.join(a.out, 'device_check.log'), 'w')

  def log(s: str) -> None:
    print(s, flush=True)
    logf.write(s + '\n')
    logf.flush()

  def left() -> float:
    return a.budget_s - (time.time() - t0)

  # Shares of the budget: the loop half (the real loop, then the resume check) LOOP_SHARE; of the rest, the JAX half
  # 60 %, eager PyTorch until 15 % is left, torch.compile that (≤ its own limit). A half starts no new case after
  # 80 % of its limit (those left are listed as skipped), so that the case in flight can finish. The cases run in
  # order of importance (ResNet-50 first, then the mixing block).
  lh = {'status': 'not run (--no_loop)'}
  if not a.no_loop:
    lh = _run_half(a, 'loop', LOOP_SHARE * a.budget_s, log)
    if not a.keep_work:
      shutil.rmtree(os.path.join(a.out, 'work'), ignore_errors=True)
  rest = left()
  j = _run_half(a, 'jax', 0.6 * rest, log)
  t = {'status': 'not run (--no_torch)'}
  tc = {'status': 'not run (--no_torch or --no_torch_compile)'}
  if not a.no_torch:
    t = _run_half(a, 'torch', max(1.0, left() - 0.15 * rest), log)
    if not a.no_torch_compile:
      tc = _run_half(a, 'torch_compile', min(a.compile_timeout_s, max(1.0, left())), log)
  kind = j.get('device_kind', '?')
  peak, peak_source = _peak(kind, a.peak_tflops)
  measured = next((v for n, v in MEASURED_MATMUL_BF16.items() if n in kind), None)
  res = merge(p, j, t, tc, peak, peak_source, measured)
  res['loop'], res['resume'] = loop_rows(lh), lh.get('resume', {})
  res['meta'] = {
      'smoke': a.smoke, 'dtype': p['dtype'], 'warmup': p['warmup'], 'rounds': p['rounds'], 'steps': p['steps'],
      'date_utc': time.strftime('%Y-%m-%d %H:%M', time.gmtime()), 'wall_s': time.time() - t0,
      'budget_s': a.budget_s, 'host': f'{os.cpu_count()} cores, {platform.processor() or platform.machine()}',
      'load_avg_1min_end': os.getloadavg()[0], 'python': platform.python_version(),
      'jax': j.get('jax'), 'flax': j.get('flax'), 'jax_backend': j.get('backend'), 'jax_device': kind,
      'xla_flags': j.get('xla_flags', os.environ.get('XLA_FLAGS', '')), 'jax_status': j['status'],
      'tensorflow_modules_in_jax_half': j.get('tensorflow_modules'),
      'third_party_modules_in_jax_half': j.get('third_party_modules'),
      'torch': t.get('torch'), 'torchvision': t.get('torchvision'), 'torch_device': t.get('device_name'),
      'torch_threads': t.get('threads'), 'torch_status': t['status'], 'torch_compile_status': tc['status'],
      'peak_tflops': peak, 'peak_source': peak_source, 'measured_matmul_tflops': measured,
      'measured_matmul_source': '/work/.library/device/KINDS.md: 8192^3 bf16 matmul via PyTorch, 769-798 TFLOP/s'
                                if measured else None,
      'skipped': j.get('skipped', []) + t.get('skipped', []) + tc.get('skipped', []) + lh.get('skipped', []),
      'loop_status': lh['status']}
  write_json(os.path.join(a.out, 'device_check.json'), res)
  tab = table(res) + '\n\n' + loop_table(res)
  with open(os.path.join(a.out, 'device_check.md'), 'w') as f:
    f.write(tab + '\n')
  log(tab)
  log(f'wrote {os.path.join(a.out, "device_check.json")} in {res["meta"]["wall_s"]:.0f} s')
  if j['status'] != 'ok' or not res['steps'] or not any('ours_images_per_s' in r for r in res['steps']):
    sys.exit(1)
  if not a.no_loop and (lh['status'] != 'ok' or not any('ips' in r for r in res['loop'])):
    sys.exit(1)


if __name__ == '__main__':
  main()
