"""The PyTorch side of bench/bench_input.py and bench/bench_imagenet_host.py: a DataLoader with torchvision
transforms, timed the same way.

Runs without JAX/TF (TensorFlow and torch in one process crash here); bench/bench_input.py and
bench/bench_imagenet_host.py call it as a subprocess and print both sides in one table. By hand:

    BENCH_PY -m bench.torch_input --npz=bench/out/cifar_train.npz --pipeline=autoaugment --images=20000
    BENCH_PY -m bench.torch_input --folder=bench/out/jpegs --pipeline=rrc --images=2000
    BENCH_PY -m bench.torch_input --folder=bench/out/photos/train --pipeline=eval --images=2048 --batch=256
    BENCH_PY -m bench.torch_input --folder=bench/out/photos --pipeline=rrc --profile=bench/out/photos_q97

Prints one JSON line: {"images_per_s": ..., "images_per_cpu_s": ..., "workers": ..., "torch": ..., "torchvision": ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class Cutout:
  """DeVries & Taylor's Cutout on a uint8 CHW tensor: a size x size square of grey (128) centred at a uniform
  pixel, clipped at the border (the same op as refine_jax's `cutout(size)`)."""

  def __init__(self, size: int):
    self.size = size

  def __call__(self, img: torch.Tensor) -> torch.Tensor:
    h, w = img.shape[-2:]
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - self.size // 2, 0), min(cy + self.size // 2, h)
    x0, x1 = max(cx - self.size // 2, 0), min(cx + self.size // 2, w)
    img = img.clone()
    img[..., y0:y1, x0:x1] = 128
    return img


PIPELINES = {
    # Both end in uint8 tensors, as refine_jax's host pipeline does (normalisation happens on device).
    'standard': lambda: T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.PILToTensor()]),
    'autoaugment': lambda: T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                      T.AutoAugment(T.AutoAugmentPolicy.CIFAR10), T.PILToTensor(), Cutout(16)]),
    'rrc': lambda: T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()]),
    'rrc_autoaugment': lambda: T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(),
                                          T.AutoAugment(T.AutoAugmentPolicy.IMAGENET), T.PILToTensor()]),
    'eval': lambda: T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()]),
}


class ArrayImages(Dataset):
  """uint8 NHWC images in memory, handed to the transforms as PIL images (what torchvision's CIFAR10 does)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
    self.images, self.labels, self.transform = images, labels, transform

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int):
    from PIL import Image
    return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def cpu_seconds(pids) -> float:
  """User + system CPU seconds the processes `pids` have used so far (all their threads; Linux /proc)."""
  total = 0
  for pid in pids:
    with open(f'/proc/{pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
    total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
  return total / os.sysconf('SC_CLK_TCK')


def images_per_s(ds: Dataset, n: int, batch: int, workers: int, skip: int = 1, shuffle: bool = True) -> dict:
  """Images/s over `n` images after `skip` batches (start-up: worker processes, first reads), and images per
  CPU-second of this process and its workers over the same batches (less sensitive to other load)."""
  loader = DataLoader(ds, batch_size=batch, shuffle=shuffle, num_workers=workers, drop_last=True,
                      persistent_workers=False, prefetch_factor=4 if workers else None)
  it = iter(loader)
  for _ in range(skip):
    next(it)
  steps = n // batch
  if steps + skip > len(loader):
    raise ValueError(f'{n} images after {skip} batches need more than the {len(ds)} images of the dataset')
  pids = [os.getpid()] + [w.pid for w in getattr(it, '_workers', [])]
  t, c = time.perf_counter(), cpu_seconds(pids)
  for _ in range(steps):
    next(it)
  t, c = time.perf_counter() - t, cpu_seconds(pids) - c
  return {'images_per_s': steps * batch / t, 'images_per_cpu_s': steps * batch / c}


def profile(folder: str, folder_q97: str, count: int = 300) -> dict:
  """CPU ms per image of each stage of torchvision's RRC + flip (PIL) on images 0..count-1 of a folder that
  bench/photos.py wrote, in one thread (what one DataLoader worker does per image); the decode again on the same
  images at quality 97 (`folder_q97`)."""
  import io
  from PIL import Image
  from bench import photos
  torch.set_num_threads(1)
  files = photos.first(folder, count)
  data = [open(f, 'rb').read() for f in files]
  data_q97 = [open(f, 'rb').read() for f in photos.first(folder_q97, count)]
  decode = lambda d: Image.open(io.BytesIO(d)).convert('RGB')  # noqa: E731 - what ImageFolder's pil_loader does
  images = [decode(d) for d in data]
  rrc = T.RandomResizedCrop(224)
  crops = [rrc(x) for x in images]
  whole = PIPELINES['rrc']()

  def ms(fn, args) -> float:
    fn(args[0])
    c = time.process_time()
    for a in args:
      fn(a)
    return (time.process_time() - c) / len(args) * 1e3
  rows = {
      'read the file': ms(lambda f: open(f, 'rb').read(), files),
      'decode the whole JPEG (PIL open + convert RGB)': ms(decode, data),
      'decode the whole JPEG, quality 97': ms(decode, data_q97),
      'RandomResizedCrop(224): crop + resize (PIL bilinear, antialiased)': ms(rrc, images),
      'flip': ms(T.RandomHorizontalFlip(p=1.0), crops),
      'PILToTensor': ms(T.PILToTensor(), crops),
      'the whole transform, one image (ImageFolder loader + rrc)': ms(
          lambda f: whole(torchvision.datasets.folder.default_loader(f)), files),
      'AutoAugment(IMAGENET), per image': ms(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET), crops),
  }
  return {'rows': rows}


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--npz', help='uint8 images/labels (CIFAR-style pipelines)')
  ap.add_argument('--folder', help='ROOT/CLASS/*.jpg (the rrc, rrc_autoaugment and eval pipelines)')
  ap.add_argument('--pipeline', choices=sorted(PIPELINES), required=True)
  ap.add_argument('--images', type=int, default=20000)
  ap.add_argument('--batch', type=int, default=128)
  ap.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)))
  ap.add_argument('--skip', type=int, default=1, help='batches before the clock starts')
  ap.add_argument('--profile', metavar='ROOT_Q97', help='instead: CPU ms per image of each stage of rrc on the '
                  'images of --folder=ROOT (a bench/photos.py folder), the decode also on ROOT_Q97 (quality 97)')
  a = ap.parse_args()
  if a.profile:
    print(json.dumps(profile(a.folder, a.profile)))
    return
  transform = PIPELINES[a.pipeline]()
  if a.folder:
    ds = torchvision.datasets.ImageFolder(a.folder, transform=transform)
  else:
    d = np.load(a.npz)
    ds = ArrayImages(d['images'], d['labels'], transform)
  r = images_per_s(ds, a.images, a.batch, a.workers, a.skip, shuffle=a.pipeline != 'eval')
  print(json.dumps({**r, 'workers': a.workers, 'torch': torch.__version__, 'torchvision': torchvision.__version__}))


if __name__ == '__main__':
  main()
