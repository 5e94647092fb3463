"""The preview grid shows each phase's host ops and on-device mixing as the trainer applies them."""
import numpy as np
from PIL import Image

from configs import digits_demo
from refine_jax import preview


def test_preview_rows_and_png(tmp_path):
  c = digits_demo.get_config()
  rows = preview.preview_rows(c, 6)
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
