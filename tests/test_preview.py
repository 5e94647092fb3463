"""The preview grid shows each phase's host ops and on-device mixing as the trainer applies them."""
import numpy as np
import pytest
from PIL import Image

from configs import digits_demo
from refine_jax import preview


def _rows(c, num):
  from refine_jax import prepare
  plan, train, _ = prepare.plan_and_splits(prepare.spec_of(c, devices=False), check=False)
  return preview.preview_rows(plan, train, num)


def test_preview_rows_and_png(tmp_path):
  c = digits_demo.get_config()
  rows = _rows(c, 6)
  assert [label.split(':')[0] for label, _ in rows] == ['augmented', 'augmented', 'refine', 'refine']
  for _, imgs in rows:
    assert imgs.shape == (6, 16, 16, 3) and imgs.dtype == np.uint8
  (_, host_a), (mix_label, mixed_a), (_, host_r), (_, mixed_r) = rows
  assert 'mixup' in mix_label and not np.array_equal(host_a, mixed_a)  # Mixup changed the pixels
  np.testing.assert_array_equal(host_r, mixed_r)  # refinement: no mixing
  out = tmp_path / 'grid.png'
  preview.save_grid(rows, str(out))
  with Image.open(out) as im:
    assert im.format == 'PNG' and im.size[0] > 300 and im.size[1] > 200



@pytest.mark.parametrize('length', [40, 60, 90, 200])
def test_a_long_op_string_title_leaves_the_thumbnails_their_size(tmp_path, length):
  """A label as long as an AutoAugment op string used to squeeze every thumbnail to a dot (seen at 60
  characters over 8 thumbnails: a sixth of their pixels left). Each of the 2 x 8 noise thumbnails must still
  cover about 80 x 80 pixels of the PNG (a 1.2 inch thumbnail at 100 dpi is 120 px)."""
  rng = np.random.default_rng(0)
  spec = 'augmented: host pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16) (aug_prob 1.00)'
  rows = [((spec * 4)[:length], rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)),
          ('refine', rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))]
  out = tmp_path / 'grid.png'
  preview.save_grid(rows, str(out))
  with Image.open(out) as im:
    px = np.asarray(im.convert('RGB')).astype(int)
  colour = np.abs(px - px.mean(-1, keepdims=True)).sum(-1) > 60  # strongly coloured: noise, not text or white
  assert colour.sum() >= 16 * 80 * 80 * 0.5, colour.sum()  # about 2/3 of noise pixels are strongly coloured
