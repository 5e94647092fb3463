"""ImageNet, ResNet-50: refine a given public (torchvision-format) checkpoint with the paper's ImageNet refinement.

    python -m refine_jax.main --config=configs/imagenet_r50_refine_pretrained.py --workdir=gs://BUCKET/r50_ref \
        --config.data_dir=gs://BUCKET/tensorflow_datasets --config.init_from=/PATH/resnet50_mixup.pth

`init_from` (required) is a torchvision ResNet-50 state_dict (.pt/.pth/.safetensors; e.g. a checkpoint trained
with a heavy Mixup / CutMix / RandAugment recipe); its 1000-class head is kept (BN running statistics too). For a
ResNet-101 file add `--config.model=resnet101`. The file is read on every process, so it must lie on a local
path each host sees. A re-run resumes from this workdir's own checkpoint first, never re-reading the file.

Paper (Table 5 settings): refinement = 20 epochs, standard augmentation (random-resized crop + flip), lr 1e-4,
batch 256, weight decay 1e-4 (as in its ImageNet training); eval resize 256 + centre crop 224. The paper refines
its own Mixup / AutoAugment models (+0.2 / +0.15 top-1 for ResNet-50); what refinement gives a public
checkpoint trained with another recipe is what this run measures. The input normalisation (ImageNet mean / std
on [0, 1] RGB) is torchvision's, so a torchvision model sees the inputs it was trained on.
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
  c.phase_order = ('refine',)
  c.phases.refine = common.phase(20, common.IMAGENET_PP, common.mix('none'), common.lr('constant', 1e-4))
  c.eval_every_epochs = 1.0
  c.checkpoint_every_epochs = 2.0
  c.log_every_steps = 200
  return c
