"""The runtime tests' tiny model: a two-convolution stand-in for BiSeNet and its export.

`TinySegNet` gives logits at the input resolution like the real network; `export_onnx` wraps it in
the export's DeployModule (in-graph resize, normalization, argmax) and exports it with the
library's exporter plus a record from support/records.py (`runtime_record`).
"""

import torch
from torch import nn

from bisenet_deploy.metadata import ExportInfo

NUM_CLASSES = 5
INPUT_W, INPUT_H = 96, 48     # graph input (the "camera" size)
MODEL_W, MODEL_H = 64, 32     # network input after the in-graph resize


class TinySegNet(nn.Module):
    """Logits N x C x H x W at the input resolution, from a 3-channel input convolution."""

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        y = self.head(torch.relu(self.stem(x)))
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                         align_corners=False)


def export_onnx(path, net, record):
    """The deploy graph of `net` for `record`, exported by the library's exporter (the default:
    torch.export-based where available), with the record in its metadata."""
    import onnx

    from bisenet_deploy.export.deploy_module import DeployModule
    from bisenet_deploy.export.exporters import export_graph
    from bisenet_deploy.export.onnx_metadata import set_record

    model, _ = export_graph(DeployModule(net, record), ExportInfo.from_dict(record["export"]),
                            opset=17)
    set_record(model, record)
    onnx.save(model, str(path))
    return str(path)


def tiny_net():
    """A TinySegNet with fixed weights: strong, varied logits so argmax ties do not occur."""
    torch.manual_seed(0)
    model = TinySegNet().eval()
    with torch.no_grad():
        model.head.bias.copy_(torch.linspace(-0.5, 0.5, NUM_CLASSES))
    return model
