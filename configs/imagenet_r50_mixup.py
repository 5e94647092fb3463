"""ImageNet, ResNet-50, Mixup (γ = 0.2) for 200 epochs, then 20 refinement epochs at lr 1e-4 (paper, Table 5).

    python -m refine_jax.main --config=configs/imagenet_r50_mixup.py --workdir=gs://BUCKET/r50_mixup \
        --config.data_dir=gs://BUCKET/tensorflow_datasets

Paper: batch 256, lr 0.1 ÷10 at epochs 60, 120 and 180, weight decay 1e-4; random-resized crop + flip for
training, resize 256 + centre crop 224 for eval; refinement on standard-augmented data at lr 1e-4.
Aim (He et al., Table 5, ResNet-50 Mixup γ = 0.2): refinement raises top-1 over the Mixup-only model.
"""
from configs import common


def get_config():
  c = common.get_config()
  c.dataset = 'imagenet2012'
  c.eval_split = 'validation'  # TFDS imagenet2012 'test' has no labels
  c.model = 'resnet50'
  c.image_size = 224
  c.batch_size = 256
  c.eval_batch_size = 1000
  c.pp_eval = common.IMAGENET_PP_EVAL
  c.diag_examples = 10000
  c.phases.augmented = common.phase(200, common.IMAGENET_PP, common.mix('mixup', 0.2),
                                    common.lr('multistep', 0.1, (60, 120, 180), 0.1))
  c.phases.refine = common.phase(20, common.IMAGENET_PP, common.mix('none'), common.lr('constant', 1e-4))
  c.checkpoint_every_epochs = 5.0
  c.log_every_steps = 200
  return c
