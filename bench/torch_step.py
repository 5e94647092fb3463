"""The PyTorch side of bench/bench_step.py: the same models' SGD train step in eager PyTorch, timed alike.

Runs in the separate bench environment (torch + torchvision, no JAX); bench/bench_step.py calls it as a
subprocess. By hand:

    BENCH_PY -m bench.torch_step --model=preact_resnet18 --batch=32 --size=32 --steps=5

Prints one JSON line: {"step_s": [...], "params": ..., "threads": ..., "torch": ...}. The models follow the
papers' definitions as refine_jax.models does (checked by the parameter counts, which bench_step prints
side by side): PreActResNet-18 (He et al. 2016, CIFAR stem), WRN-28-10 (Zagoruyko & Komodakis), ResNet-50
(torchvision's, v1.5 like ours).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None)

  def forward(self, x):
    out = F.relu(self.bn1(x))
    sc = self.shortcut(out) if self.shortcut is not None else x
    out = self.conv1(out)
    out = self.conv2(F.relu(self.bn2(out)))
    return out + sc


class PreActResNet18(nn.Module):

  def __init__(self, num_classes: int):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    layers, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
      layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
      cin = cout
    self.layers = nn.Sequential(*layers)
    self.bn = nn.BatchNorm2d(512)
    self.fc = nn.Linear(512, num_classes)

  def forward(self, x):
    out = F.relu(self.bn(self.layers(self.conv1(x))))
    return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideResNet28_10(nn.Module):

  def __init__(self, num_classes: int, k: int = 10, n: int = 4):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
    layers, cin = [], 16
    for cout, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
      for i in range(n):
        layers.append(PreActBlock(cin, cout, stride if i == 0 else 1))  # WRN's block is this one
        cin = cout
    self.layers = nn.Sequential(*layers)
    self.bn = nn.BatchNorm2d(cin)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    out = F.relu(self.bn(self.layers(self.conv1(x))))
    return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def get_model(name: str, num_classes: int) -> nn.Module:
  if name == 'preact_resnet18':
    return PreActResNet18(num_classes)
  if name == 'wide_resnet28_10':
    return WideResNet28_10(num_classes)
  if name == 'resnet50':
    import torchvision
    return torchvision.models.resnet50(num_classes=num_classes)
  raise ValueError(f'unknown model {name!r}; allowed: preact_resnet18, wide_resnet28_10, resnet50')


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--model', required=True)
  ap.add_argument('--batch', type=int, required=True)
  ap.add_argument('--size', type=int, required=True)
  ap.add_argument('--classes', type=int, default=10)
  ap.add_argument('--steps', type=int, default=5)
  ap.add_argument('--channels_last', action='store_true')
  ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
  ap.add_argument('--bf16', action='store_true', help='autocast to bfloat16 (fp32 parameters), as dtype=bfloat16')
  a = ap.parse_args()
  torch.manual_seed(0)
  dev = torch.device(a.device)
  model = get_model(a.model, a.classes).to(dev)
  fmt = torch.channels_last if a.channels_last else torch.contiguous_format
  model = model.to(memory_format=fmt)
  opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
  x = torch.randn(a.batch, 3, a.size, a.size, device=dev).to(memory_format=fmt)
  y = torch.randint(0, a.classes, (a.batch,), device=dev)

  def step():
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
      loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  model.train()
  step()  # warm-up (allocator, oneDNN / cuDNN kernel selection)
  times = []
  for _ in range(a.steps):
    if dev.type == 'cuda':
      torch.cuda.synchronize()
    t = time.perf_counter()
    float(step().detach())
    times.append(time.perf_counter() - t)
  print(json.dumps({'step_s': times, 'params': sum(p.numel() for p in model.parameters()),
                    'threads': torch.get_num_threads(), 'torch': torch.__version__, 'device': str(dev)}))


if __name__ == '__main__':
  main()
