"""Lays out the official Tiny-ImageNet archive as the image folder the `tinyimagenet_*` configs read.

    python launch/prepare_tiny_imagenet.py --archive=tiny-imagenet-200.zip --out=/data/tiny-imagenet

Reads tiny-imagenet-200.zip (pure Python: zipfile, no network, nothing extracted besides the images it copies)
and writes

    OUT/train/WNID/WNID_k.JPEG   from  tiny-imagenet-200/train/WNID/images/WNID_k.JPEG   (500 per class)
    OUT/val/WNID/val_i.JPEG      from  tiny-imagenet-200/val/images/val_i.JPEG, its class from
                                       tiny-imagenet-200/val/val_annotations.txt          (50 per class)
    OUT/wnids.txt, OUT/words.txt copied as they are (class ids; id → English names)

The unlabelled test split and the bounding-box files are left out. Labels are the sorted WNIDs (the order
`dataset='image_folder'` gives the class folders). Before writing anything it checks the archive: wnids.txt
names every train class and only those, every val image has exactly one annotation and every annotation an
image, every val class is a train class. It writes into OUT.partial and renames that to OUT at the end, so OUT
exists only when complete; it refuses to touch an existing OUT. Exit code 0 on success, 2 on a bad archive or
arguments (the message says what is wrong).
"""
from __future__ import annotations

import argparse
import collections
import os
import posixpath
import re
import shutil
import sys
import zipfile

_SAFE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')  # a WNID or an image file name: no '/', no '..'
_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
OFFICIAL = {'classes': 200, 'train': 100_000, 'val': 10_000}


class ArchiveError(ValueError):
  """The archive is not a Tiny-ImageNet archive as released (the message says why)."""


def _safe(name: str, what: str) -> str:
  if not _SAFE_NAME.fullmatch(name) or name in ('.', '..'):
    raise ArchiveError(f'unexpected {what} {name!r} (not a plain file or folder name)')
  return name


def _root(names: list[str]) -> str:
  """The archive's top folder, 'tiny-imagenet-200/' in the official zip ('' if the files sit at the top)."""
  roots = sorted({n[:-len('wnids.txt')] for n in names
                  if posixpath.basename(n) == 'wnids.txt' and not n.startswith('__MACOSX/')})
  if len(roots) != 1:
    raise ArchiveError('expected exactly one wnids.txt in the archive, found '
                       + (', '.join(r + 'wnids.txt' for r in roots) or 'none'))
  return roots[0]


def plan(zf: zipfile.ZipFile) -> tuple[str, list[str], list[tuple[str, str]]]:
  """Checks the archive and returns (root, wnids, [(member, relative output path), ...]); writes nothing."""
  names = [i.filename for i in zf.infolist() if not i.is_dir()]
  root = _root(names)
  wnids = [l.strip() for l in zf.read(root + 'wnids.txt').decode('utf-8').splitlines() if l.strip()]
  for w in wnids:
    _safe(w, 'class id in wnids.txt')
  if len(set(wnids)) != len(wnids):
    raise ArchiveError('wnids.txt lists a class twice')
  known = set(wnids)

  jobs: list[tuple[str, str]] = []
  train_count: collections.Counter = collections.Counter()
  train_re = re.compile(re.escape(root) + r'train/([^/]+)/images/([^/]+)')
  val_re = re.compile(re.escape(root) + r'val/images/([^/]+)')
  val_images = {}
  for n in names:
    m = train_re.fullmatch(n)
    if m and m.group(2).lower().endswith(_IMAGE_EXTENSIONS):
      wnid, f = _safe(m.group(1), 'train class folder'), _safe(m.group(2), 'train image name')
      if wnid not in known:
        raise ArchiveError(f'train class folder {wnid!r} is not listed in wnids.txt')
      jobs.append((n, f'train/{wnid}/{f}'))
      train_count[wnid] += 1
      continue
    m = val_re.fullmatch(n)
    if m and m.group(1).lower().endswith(_IMAGE_EXTENSIONS):
      val_images[_safe(m.group(1), 'val image name')] = n
  missing = [w for w in wnids if not train_count[w]]
  if missing:
    raise ArchiveError(f'{len(missing)} class(es) of wnids.txt have no train images, e.g. {missing[0]!r}')

  ann_name = root + 'val/val_annotations.txt'
  if ann_name not in names:
    raise ArchiveError(f'no {ann_name} in the archive')
  labels: dict[str, str] = {}
  for i, line in enumerate(zf.read(ann_name).decode('utf-8').splitlines(), 1):
    if not line.strip():
      continue
    parts = line.split('\t')
    if len(parts) < 2:
      raise ArchiveError(f'{ann_name} line {i}: expected "FILE<TAB>WNID<TAB>...", got {line!r}')
    f, wnid = parts[0].strip(), parts[1].strip()
    if f in labels:
      raise ArchiveError(f'{ann_name} line {i}: {f!r} is annotated twice')
    if wnid not in known:
      raise ArchiveError(f'{ann_name} line {i}: class {wnid!r} is not listed in wnids.txt')
    labels[_safe(f, 'val image name')] = wnid
  unlabelled = sorted(set(val_images) - set(labels))
  if unlabelled:
    raise ArchiveError(f'{len(unlabelled)} val image(s) have no line in {ann_name}, e.g. {unlabelled[0]!r}')
  absent = sorted(set(labels) - set(val_images))
  if absent:
    raise ArchiveError(f'{len(absent)} annotated val image(s) are not in the archive, e.g. {absent[0]!r}')
  for f in sorted(val_images):
    jobs.append((val_images[f], f'val/{labels[f]}/{f}'))
  return root, wnids, jobs


def prepare(archive: str, out: str, *, log=print) -> dict:
  """Writes the image folder; returns counts {'classes', 'train', 'val'}."""
  out = os.path.abspath(out)
  if os.path.exists(out):
    raise FileExistsError(f'{out} already exists; remove it or choose another --out')
  partial = out + '.partial'
  with zipfile.ZipFile(archive) as zf:
    root, wnids, jobs = plan(zf)
    if os.path.exists(partial):  # left by an interrupted run of this script
      shutil.rmtree(partial)
    os.makedirs(partial)
    for split in ('train', 'val'):
      for w in wnids:
        os.makedirs(os.path.join(partial, split, w))
    for k, (member, rel) in enumerate(jobs, 1):
      with zf.open(member) as src, open(os.path.join(partial, *rel.split('/')), 'wb') as dst:
        shutil.copyfileobj(src, dst)
      if k % 20000 == 0:
        log(f'  {k}/{len(jobs)} images written')
    for extra in ('wnids.txt', 'words.txt'):
      if root + extra in zf.namelist():
        with zf.open(root + extra) as src, open(os.path.join(partial, extra), 'wb') as dst:
          shutil.copyfileobj(src, dst)
  os.replace(partial, out)
  counts = {'classes': len(wnids), 'train': sum(r.startswith('train/') for _, r in jobs),
            'val': sum(r.startswith('val/') for _, r in jobs)}
  return counts


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--archive', required=True, help='path to the official tiny-imagenet-200.zip')
  p.add_argument('--out', required=True, help='folder to create (must not exist); pass it as --config.data_dir')
  a = p.parse_args(argv)
  if not os.path.isfile(a.archive):
    print(f'error: --archive: no such file {a.archive!r}', file=sys.stderr)
    return 2
  try:
    counts = prepare(a.archive, a.out)
  except (ArchiveError, FileExistsError, zipfile.BadZipFile) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {os.path.abspath(a.out)}: {counts["classes"]} classes, {counts["train"]} train and '
        f'{counts["val"]} val images')
  if counts != OFFICIAL:
    print(f'warning: the official release has {OFFICIAL["classes"]} classes, {OFFICIAL["train"]} train and '
          f'{OFFICIAL["val"]} val images; this archive differs', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
