"""A 224×224 RGB classifier for the speed bench (issue 23): torchvision's MobileNetV3-Small, random weights
(the bench measures speed, not accuracy), exported to ONNX with a dynamic batch, NCHW, ImageNet mean/std.

    /usr/bin/python3 training/export-mobilenet.py OUT.onnx        (needs Debian's python3-torch, python3-torchvision, python3-onnx)
"""
import sys

import torch
import torchvision

out = sys.argv[1]
torch.manual_seed(0)
model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10).eval()
dummy = torch.randn(1, 3, 224, 224)
torch.onnx.export(model, dummy, out, input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
print(out)
