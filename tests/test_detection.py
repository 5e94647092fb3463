"""VOC detection (refine_jax/detection): the VOC07 metric against hand-computed values, the VOC reader's errors,
and a smoke fine-tune of Faster R-CNN from an exported backbone on a VOC folder written here.

The metric tests need only numpy; the rest skip without torch / torchvision.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from refine_jax.detection import voc
from tests.conftest import ROOT, env_for

# --------------------------------------------------------------------------- the VOC07 metric


def ann(image_id, boxes, names, difficult=None):
  """Ground truth from VOC's 1-based inclusive boxes, as parse_annotation stores them."""
  b = np.asarray([(x1 - 1, y1 - 1, x2, y2) for x1, y1, x2, y2 in boxes], np.float32).reshape(-1, 4)
  return voc.Annotation(image_id, 100, 100, b, np.asarray([voc.CLASSES.index(n) + 1 for n in names], np.int64),
                        np.asarray(difficult or [False] * len(names), bool))


GT = [ann('a', [(11, 11, 40, 40), (51, 11, 70, 30)], ['dog', 'cat']),
      ann('b', [(21, 21, 60, 50), (5, 5, 20, 20)], ['dog', 'person'], [False, True])]
DOG, CAT, PERSON = (voc.CLASSES.index(n) + 1 for n in ('dog', 'cat', 'person'))


def dets(*rows):
  """rows of (image, continuous box, score, label) -> the evaluator's input."""
  out = {}
  for image, box, score, label in rows:
    b, s, l = out.setdefault(image, ([], [], []))
    b.append(box), s.append(score), l.append(label)
  return {k: (np.asarray(b, np.float32), np.asarray(s), np.asarray(l)) for k, (b, s, l) in out.items()}


def test_ground_truth_as_predictions_gives_map_1():
  r = voc.evaluate(dets(('a', (10, 10, 40, 40), 1.0, DOG), ('a', (50, 10, 70, 30), 1.0, CAT),
                        ('b', (20, 20, 60, 50), 1.0, DOG), ('b', (4, 4, 20, 20), 1.0, PERSON)), GT)
  assert r['ap']['dog'] == r['ap']['cat'] == 1.0 and r['map'] == 1.0
  assert r['ap']['person'] is None  # only a difficult box: no AP, not in the mean (its detection is ignored)
  assert r['num_gt'] == {**{c: 0 for c in voc.CLASSES}, 'dog': 2, 'cat': 1}


def test_shifted_box_hand_computed():
  # a's dog shifted right by 20 px: intersection 10 x 30 = 300, union 900 + 900 - 300 = 1500, IoU 0.2 -> FP.
  assert voc.iou(np.array([30., 10, 60, 40]), np.array([[10., 10, 40, 40]]))[0] == pytest.approx(0.2)
  r = voc.evaluate(dets(('a', (30, 10, 60, 40), 0.9, DOG), ('b', (20, 20, 60, 50), 0.8, DOG),
                        ('a', (50, 10, 70, 30), 0.5, CAT)), GT)
  # dog: FP then TP -> recall (0, 0.5), precision (0, 0.5): thresholds 0 .. 0.5 give 0.5, 0.6 .. 1 give 0.
  assert r['ap']['dog'] == pytest.approx(6 * 0.5 / 11)
  assert r['ap']['cat'] == 1.0
  assert r['map'] == pytest.approx((3 / 11 + 1) / 2)


def test_duplicates_and_iou_at_the_threshold():
  # A duplicate of a's dog above b's: TP, FP, TP -> recall (.5, .5, 1), precision (1, .5, 2/3):
  # thresholds 0 .. 0.5 give 1, 0.6 .. 1 give 2/3: AP = (6 + 5 * 2/3) / 11 = 28/33.
  r = voc.evaluate(dets(('a', (10, 10, 40, 40), 0.95, DOG), ('a', (11, 10, 40, 40), 0.9, DOG),
                        ('b', (20, 20, 60, 50), 0.8, DOG)), GT)
  assert r['ap']['dog'] == pytest.approx(28 / 33)
  assert r['ap']['cat'] == 0.0 and r['map'] == pytest.approx(14 / 33)
  # IoU exactly 0.5 is not a match (the devkit's "ov > 0.5"): a box covering half of a's dog (15 of 30 px).
  r = voc.evaluate(dets(('a', (10, 10, 25, 40), 0.9, DOG)), GT)
  assert voc.iou(np.array([10., 10, 25, 40]), np.array([[10., 10, 40, 40]]))[0] == 0.5
  assert r['ap']['dog'] == 0.0


def test_difficult_matches_are_ignored_not_false_positives():
  gt = [ann('c', [(11, 11, 40, 40), (61, 61, 90, 90)], ['dog', 'dog'], [False, True])]
  r = voc.evaluate(dets(('c', (60, 60, 90, 90), 0.9, DOG), ('c', (10, 10, 40, 40), 0.8, DOG)), gt)
  assert r['ap']['dog'] == 1.0  # counted as an FP it would be 6 * 0.5 / 11
  assert r['num_gt']['dog'] == 1


# --------------------------------------------------------------------------- a VOC folder


XML = """<annotation><filename>{id}.jpg</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = ("<object><name>{name}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
       "<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")


def write_voc(root, n_train=4, n_test=2, w=128, h=96, seed=0):
  """A VOC2007-layout folder of noise images, each with two filled rectangles (a dog and a cat) as boxes."""
  from PIL import Image
  rng = np.random.RandomState(seed)
  for d in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
    os.makedirs(os.path.join(root, d), exist_ok=True)
  ids = {'trainval': [f'{i:06d}' for i in range(n_train)], 'test': [f'{i:06d}' for i in range(n_train, n_train + n_test)]}
  for split, names in ids.items():
    with open(os.path.join(root, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
      f.write('\n'.join(names) + '\n')
    for i in names:
      img = rng.randint(0, 80, (h, w, 3)).astype(np.uint8)
      objs = []
      for name, colour, (x1, y1, x2, y2) in (('dog', (250, 40, 40), (5, 5, 50, 60)),
                                              ('cat', (40, 250, 40), (70, 30, 120, 90))):
        img[y1 - 1:y2, x1 - 1:x2] = colour
        objs.append(OBJ.format(name=name, d=0, x1=x1, y1=y1, x2=x2, y2=y2))
      Image.fromarray(img).save(os.path.join(root, 'JPEGImages', f'{i}.jpg'), quality=95)
      with open(os.path.join(root, 'Annotations', f'{i}.xml'), 'w') as f:
        f.write(XML.format(id=i, w=w, h=h, objects='\n'.join(objs)))
  return ids


def test_reader_parses_the_layout_and_names_bad_files(tmp_path):
  root = str(tmp_path / 'VOC2007')
  write_voc(root)
  anns = voc.load_split(root, 'trainval')
  assert [a.image_id for a in anns] == ['000000', '000001', '000002', '000003']
  np.testing.assert_array_equal(anns[0].boxes, [[4, 4, 50, 60], [69, 29, 120, 90]])
  assert list(anns[0].labels) == [DOG, CAT] and (anns[0].width, anns[0].height) == (128, 96)
  bad = os.path.join(root, 'Annotations', '000002.xml')
  with open(bad, 'w') as f:
    f.write('<annotation><size><width>12')
  with pytest.raises(voc.VOCError, match=r'annotation .*000002\.xml does not parse'):
    voc.load_split(root, 'trainval')
  os.rename(os.path.join(root, 'JPEGImages'), os.path.join(root, 'images'))
  with pytest.raises(voc.VOCError, match=r'no JPEGImages/'):
    voc.check_root(root)


# --------------------------------------------------------------------------- the fine-tune (torch)


@pytest.fixture(scope='module')
def exported_backbone(tmp_path_factory):
  """A ResNet-50 backbone file written by our exporter from our model's (random) variables."""
  pytest.importorskip('torchvision')
  import jax
  import jax.numpy as jnp
  from refine_jax import export, models
  model = models.get_model('resnet50', 10)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), train=False))
  rng = np.random.RandomState(0)

  def draw(path, x):
    kind = path[-1].key
    if kind == 'kernel':
      return (rng.randn(*x.shape) * np.sqrt(2.0 / np.prod(x.shape[:-1]))).astype(np.float32)
    if kind in ('mean', 'bias'):
      return (0.1 * rng.randn(*x.shape)).astype(np.float32)
    return (0.5 + rng.rand(*x.shape)).astype(np.float32)
  v = jax.tree_util.tree_map_with_path(draw, shapes)
  path = str(tmp_path_factory.mktemp('backbone') / 'r50.safetensors')
  sd = export.to_torchvision(v, 'resnet50', num_batches_tracked=5)
  export.save_state_dict(sd, path)
  return path, sd


SMOKE = ['--epochs=1', '--batch_size=2', '--max_iters=2', '--min_size=96', '--max_size=128', '--workers=0',
         '--eval_batch=2', '--log_every=1', '--device=cpu', '--warmup_iters=1', '--lr=1e-5']


def detection(*args):
  return subprocess.run([sys.executable, '-m', 'refine_jax.detection', *args], cwd=ROOT, env=env_for(),
                        capture_output=True, text=True, timeout=900)


def test_smoke_finetune_from_an_exported_backbone_checkpoints_resumes_and_reports(exported_backbone, tmp_path):
  import torch
  path, sd = exported_backbone
  root, out = str(tmp_path / 'VOC2007'), str(tmp_path / 'det')
  write_voc(root)
  p = detection(f'--backbone={path}', f'--voc_root={root}', f'--out={out}', *SMOKE)
  assert p.returncode == 0, p.stderr[-4000:]
  assert 'iter 2/2' in p.stderr and 'ETA' in p.stderr
  res = json.load(open(os.path.join(out, 'voc07_test_map.json')))
  assert set(res['ap']) == set(voc.CLASSES) and res['num_gt']['dog'] == res['num_gt']['cat'] == 2
  assert [c for c, a in res['ap'].items() if a is not None] == ['cat', 'dog']
  assert res['map'] == pytest.approx((res['ap']['cat'] + res['ap']['dog']) / 2)
  assert res['num_test_images'] == 2
  # 4 images at batch 2: the two iterations are epoch 1, checkpointed.
  ck = torch.load(os.path.join(out, 'checkpoint_epoch001.pt'), weights_only=True)
  assert ck['epoch'] == 1
  m = ck['model']
  # The backbone is the exported one: frozen parts (conv1, layer1, every frozen BN) bit for bit, trained parts
  # (layer2..4 convs) moved from it by two small steps.
  for k in ('conv1.weight', 'layer1.0.conv2.weight', 'layer3.2.bn1.running_var', 'layer4.0.downsample.1.weight'):
    np.testing.assert_array_equal(m[f'backbone.body.{k}'].numpy(), sd[k])
  moved = m['backbone.body.layer2.0.conv1.weight'].numpy()
  assert not np.array_equal(moved, sd['layer2.0.conv1.weight'])
  assert np.abs(moved - sd['layer2.0.conv1.weight']).max() < 0.1 * np.abs(sd['layer2.0.conv1.weight']).max()
  # Re-running resumes from the checkpoint: nothing more to train, the same detections and result.
  p = detection(f'--backbone={path}', f'--voc_root={root}', f'--out={out}', *SMOKE)
  assert p.returncode == 0 and 'resumed from' in p.stderr and 'iter ' not in p.stderr, p.stderr[-3000:]
  assert json.load(open(os.path.join(out, 'voc07_test_map.json')))['ap'] == res['ap']


def test_bad_inputs_exit_2_and_write_nothing(exported_backbone, tmp_path, capsys):
  import torch
  import torchvision
  from refine_jax.detection.__main__ import main
  path, _ = exported_backbone
  root = str(tmp_path / 'VOC2007')
  write_voc(root, n_train=2, n_test=1)
  out = tmp_path / 'det'

  def refused(*args, match):
    capsys.readouterr()
    assert main([*args, f'--out={out}', *SMOKE]) == 2  # the command's exit code (sys.exit(main(...)))
    err = capsys.readouterr().err
    assert match in err, err
    assert not out.exists()
  r101 = str(tmp_path / 'r101.pt')
  torch.save(torchvision.models.resnet101(weights=None).state_dict(), r101)
  refused(f'--backbone={r101}', f'--voc_root={root}', match="is not a ResNet-50 state_dict: it holds "
                                                            "'layer3.6.conv1.weight'")
  bad = torchvision.models.resnet50(weights=None).state_dict()
  bad['layer2.0.conv2.weight'] = torch.zeros(128, 128, 1, 1)
  torch.save(bad, str(tmp_path / 'bad.pt'))
  refused(f'--backbone={tmp_path / "bad.pt"}', f'--voc_root={root}',
          match="tensor 'layer2.0.conv2.weight' has shape (128, 128, 1, 1), ResNet-50 needs (128, 128, 3, 3)")
  (tmp_path / 'notes.pt').write_text('hello')
  refused(f'--backbone={tmp_path / "notes.pt"}', f'--voc_root={root}', match='cannot be read as a PyTorch state_dict')
  refused(f'--backbone={path}', f'--voc_root={tmp_path}', match='no Annotations/, JPEGImages/, ImageSets/Main/')
  with open(os.path.join(root, 'Annotations', '000002.xml'), 'w') as f:
    f.write('<annotation><object><name>dog</name></object>')
  refused(f'--backbone={path}', f'--voc_root={root}', match='000002.xml does not parse')


def test_schedule_and_flipped_training_boxes(tmp_path):
  pytest.importorskip('torchvision')
  from refine_jax.detection import finetune
  # The paper's schedule at VOC2007 trainval size (5011 images, batch 16 -> 313 iterations per epoch).
  ipe = 5011 // 16
  lr = [finetune.lr_at(i, ipe, 0.01, [9], 500) for i in range(12 * ipe)]
  assert lr[0] == pytest.approx(1e-5) and lr[250] == pytest.approx(0.01 * (1e-3 + 0.999 * 0.5))
  assert lr[500] == lr[9 * ipe - 1] == 0.01 and lr[9 * ipe] == lr[-1] == pytest.approx(0.001)
  root = str(tmp_path / 'VOC2007')
  write_voc(root, n_train=8, n_test=1)
  with open(os.path.join(root, 'Annotations', '000000.xml')) as f:
    xml = f.read()
  with open(os.path.join(root, 'Annotations', '000000.xml'), 'w') as f:  # make the cat difficult
    f.write(xml.replace('<name>cat</name><difficult>0</difficult>', '<name>cat</name><difficult>1</difficult>'))
  ds = finetune.VOCDetection(root, voc.load_split(root, 'trainval'), train=True, seed=0)
  assert ds[0][1]['labels'].tolist() == [DOG]  # difficult objects are left out of training
  flips = 0
  for i in range(1, 8):
    img, t = ds[i]
    for (x1, y1, x2, y2), label in zip(t['boxes'].tolist(), t['labels'].tolist()):
      # The box still frames its filled rectangle (red dog, green cat), flipped or not.
      inside = img[:, int(y1):int(y2), int(x1):int(x2)]
      channel = 0 if label == DOG else 1
      assert float(inside[channel].mean()) > 0.9 and float(inside[1 - channel].mean()) < 0.3
    flips += t['boxes'][0, 0].item() != 4.0
  assert 0 < flips < 7  # each image flipped with p = 0.5, by its seeded draw
