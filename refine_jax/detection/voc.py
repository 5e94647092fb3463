"""PASCAL VOC: the directory layout, annotation parsing, and the VOC07 detection metric (numpy only).

Layout (one year's folder, e.g. VOCdevkit/VOC2007): Annotations/ID.xml, JPEGImages/ID.jpg,
ImageSets/Main/{trainval,test}.txt. Boxes are kept in continuous pixel coordinates (x1, y1, x2, y2) =
(xmin - 1, ymin - 1, xmax, ymax) of VOC's 1-based inclusive ones, so that the plain IoU here equals the devkit's
"+1" IoU on the original coordinates (a detection [x1, y1, x2, y2] being the pixels x1+1..x2, y1+1..y2).

The metric follows the VOC2007 devkit (VOCevaldet / py-faster-rcnn's voc_eval with use_07_metric): per class,
detections sorted by score; each takes the ground-truth box of its image with the highest IoU; IoU > 0.5 with
a difficult box: ignored (neither TP nor FP); with a free non-difficult box: TP (the box is taken); otherwise FP.
AP = mean over recall thresholds 0, 0.1, ..., 1 of the highest precision at recall >= threshold (0 if none).
mAP averages the classes that have at least one non-difficult ground-truth box (all 20 on VOC2007 test).
"""
from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET
from typing import Mapping, Sequence

import numpy as np

from refine_jax.errors import BadInput

CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
           'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')


class VOCError(BadInput):
  """A VOC root or annotation that cannot be used; the command exits with code 2 and writes nothing."""


@dataclasses.dataclass
class Annotation:
  image_id: str
  width: int
  height: int
  boxes: np.ndarray      # (n, 4) float32, continuous (x1, y1, x2, y2)
  labels: np.ndarray     # (n,) int64, 1..20 (0 is the background class)
  difficult: np.ndarray  # (n,) bool


def check_root(root: str) -> None:
  missing = [d for d in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main'))
             if not os.path.isdir(os.path.join(root, d))]
  if missing:
    raise VOCError(f'--voc_root {root!r} is not a VOC year folder: no {", ".join(d + "/" for d in missing)} '
                   '(expected Annotations/, JPEGImages/, ImageSets/Main/, e.g. VOCdevkit/VOC2007)')


def image_ids(root: str, split: str) -> list[str]:
  path = os.path.join(root, 'ImageSets', 'Main', f'{split}.txt')
  if not os.path.isfile(path):
    raise VOCError(f'no image list for split {split!r}: {path} does not exist')
  with open(path) as f:
    ids = [l.strip() for l in f if l.strip()]
  if not ids:
    raise VOCError(f'{path} lists no images')
  return ids


def parse_annotation(path: str) -> Annotation:
  """One Annotations/ID.xml; anything unparsable or inconsistent is a VOCError naming the file."""
  try:
    root = ET.parse(path).getroot()
    size = root.find('size')
    width, height = int(size.find('width').text), int(size.find('height').text)
    boxes, labels, difficult = [], [], []
    for obj in root.findall('object'):
      name = obj.find('name').text.strip()
      if name not in CLASSES:
        raise VOCError(f'{path}: unknown class {name!r}; allowed: {", ".join(CLASSES)}')
      bb = obj.find('bndbox')
      xmin, ymin, xmax, ymax = (float(bb.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
      if not (1 <= xmin <= xmax and 1 <= ymin <= ymax):
        raise VOCError(f'{path}: box ({xmin}, {ymin}, {xmax}, {ymax}) of {name!r} is not a 1-based box')
      d = obj.find('difficult')
      boxes.append((xmin - 1, ymin - 1, xmax, ymax))
      labels.append(CLASSES.index(name) + 1)
      difficult.append(d is not None and int(d.text) == 1)
  except VOCError:
    raise
  except FileNotFoundError:
    raise VOCError(f'annotation {path} does not exist') from None
  except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
    raise VOCError(f'annotation {path} does not parse ({type(e).__name__}: {e})') from None
  image_id = os.path.splitext(os.path.basename(path))[0]
  return Annotation(image_id, width, height, np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(labels, np.int64), np.asarray(difficult, bool))


def load_split(root: str, split: str) -> list[Annotation]:
  """Every annotation of a split, parsed up front (a bad file fails before any training), images checked."""
  check_root(root)
  anns = []
  for i in image_ids(root, split):
    a = parse_annotation(os.path.join(root, 'Annotations', f'{i}.xml'))
    if not os.path.isfile(image_path(root, i)):
      raise VOCError(f'image {image_path(root, i)} (listed in {split}.txt) does not exist')
    anns.append(a)
  return anns


def image_path(root: str, image_id: str) -> str:
  return os.path.join(root, 'JPEGImages', f'{image_id}.jpg')


# --------------------------------------------------------------------------- the VOC07 metric


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """IoU of one continuous box with each of `boxes` (n, 4)."""
  iw = np.maximum(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0)
  ih = np.maximum(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0)
  inter = iw * ih
  union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
  return inter / np.maximum(union, np.finfo(np.float64).eps)


def ap_voc07(recall: np.ndarray, precision: np.ndarray) -> float:
  """11-point interpolated average precision (VOC2007)."""
  points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0.0, 1.0, 11)]
  return float(np.sum(points) / 11.0)


def evaluate(detections: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
             ground_truth: Sequence[Annotation], iou_threshold: float = 0.5) -> dict:
  """VOC07 AP per class and mAP.

  detections: image_id -> (boxes (n, 4) continuous, scores (n,), labels (n,) in 1..20).
  Returns {'ap': {class: AP or None (no non-difficult ground truth)}, 'map': mean over classes with an AP,
  'num_gt': {class: non-difficult boxes}, 'num_det': {class: detections}}.
  """
  gt = {a.image_id: a for a in ground_truth}
  unknown = sorted(set(detections) - set(gt))
  if unknown:
    raise ValueError(f'detections for images without ground truth, first: {unknown[0]!r}')
  out = {'ap': {}, 'num_gt': {}, 'num_det': {}}
  for c, name in enumerate(CLASSES, start=1):
    npos = int(sum(np.sum((a.labels == c) & ~a.difficult) for a in ground_truth))
    taken = {i: np.zeros(int(np.sum(a.labels == c)), bool) for i, a in gt.items()}
    dets = []  # (score, image_id, box)
    for i, (boxes, scores, labels) in detections.items():
      for b, s in zip(np.asarray(boxes)[np.asarray(labels) == c], np.asarray(scores)[np.asarray(labels) == c]):
        dets.append((float(s), i, np.asarray(b, np.float64)))
    dets.sort(key=lambda d: -d[0])  # stable: ties keep image order, as the devkit's sort
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for k, (_, i, b) in enumerate(dets):
      a = gt[i]
      g_boxes, g_diff = a.boxes[a.labels == c].astype(np.float64), a.difficult[a.labels == c]
      if len(g_boxes):
        ov = iou(b, g_boxes)
        j = int(np.argmax(ov))
        if ov[j] > iou_threshold:
          if g_diff[j]:
            continue  # ignored
          if not taken[i][j]:
            tp[k], taken[i][j] = 1, True
          else:
            fp[k] = 1
          continue
      fp[k] = 1
    out['num_gt'][name], out['num_det'][name] = npos, len(dets)
    if npos == 0:
      out['ap'][name] = None
      continue
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / npos
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    out['ap'][name] = ap_voc07(recall, precision)
  aps = [v for v in out['ap'].values() if v is not None]
  out['map'] = float(np.mean(aps)) if aps else None
  return out
