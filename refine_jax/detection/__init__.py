"""(optional, PyTorch) Faster R-CNN ResNet-50-FPN fine-tuned on PASCAL VOC 2007 from an exported backbone.

    python -m refine_jax.detection --backbone=r50.pt --voc_root=VOCdevkit/VOC2007 --out=DIR

The paper's Table 6 protocol: torchvision's Faster R-CNN with the ImageNet-trained ResNet-50 (a file written by
`python -m refine_jax.export`, or any torchvision ResNet-50 state_dict) as backbone, trained on VOC2007
trainval for 12 epochs at batch 16, lr 0.01 divided by 10 after epoch 9, evaluated on VOC2007 test with the
VOC07 metric (11-point interpolated AP at IoU > 0.5, difficult objects ignored). `voc.py` reads the VOC layout
and computes the metric (numpy only); `finetune.py` holds the model and loop (torch, torchvision).
Nothing here is imported by the rest of refine_jax.
"""
