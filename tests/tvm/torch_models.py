"""Torch-exported test models (random weights): ResNet-18, MobileNetV2, a ViT and a BERT-style encoder.

torchvision is not installed here, so the architectures are written out
(standard layer shapes: ResNet-18's basic blocks, MobileNetV2's inverted
residuals with ReLU6, a ViT with 16x16 patches and a class token, BERT's
embeddings + post-LayerNorm encoder layers with GELU).  They are exported
with torch's TorchScript exporter (the dynamo one needs onnxscript) into a
cache folder, once per process.
"""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np

MODELS = ("resnet18", "mobilenetv2", "vit", "bert")


def _torch():
    import torch  # noqa: F401 - optional: the tests skip without it
    return torch


def _resnet18():
    torch = _torch()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers), (1, 3, 224, 224)


def _mobilenetv2():
    torch = _torch()
    nn = torch.nn

    def cbr(cin, cout, k, s, groups=1):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    class Inverted(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = (cbr(cin, hidden, 1, 1) if expand != 1 else []) + cbr(hidden, hidden, 3, stride, hidden)
            layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    layers = cbr(3, 32, 3, 2)
    cin = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            layers.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += cbr(cin, 1280, 1, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers), (1, 3, 224, 224)


def _encoder_layer(dim: int, heads: int, norm_first: bool):
    nn = _torch().nn
    return nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                      batch_first=True, norm_first=norm_first)


def _vit():
    torch = _torch()
    nn = torch.nn

    class ViT(nn.Module):
        def __init__(self, dim: int = 192, depth: int = 4, heads: int = 3) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, dim, 16, 16)
            self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.pos = nn.Parameter(torch.randn(1, 197, dim) * 0.02)
            self.blocks = nn.ModuleList([_encoder_layer(dim, heads, True) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 1000)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
            for b in self.blocks:
                x = b(x)
            return self.head(self.norm(x[:, 0]))

    return ViT(), (1, 3, 224, 224)


def _bert():
    torch = _torch()
    nn = torch.nn

    class Bert(nn.Module):
        def __init__(self, vocab: int = 1000, dim: int = 128, depth: int = 2, heads: int = 4,
                     seq: int = 64) -> None:
            super().__init__()
            self.tok = nn.Embedding(vocab, dim)
            self.pos = nn.Embedding(seq, dim)
            self.norm = nn.LayerNorm(dim)
            self.layers = nn.ModuleList([_encoder_layer(dim, heads, False) for _ in range(depth)])
            self.pool = nn.Linear(dim, dim)
            self.register_buffer("positions", torch.arange(seq).unsqueeze(0))

        def forward(self, ids):
            x = self.norm(self.tok(ids) + self.pos(self.positions))
            for layer in self.layers:
                x = layer(x)
            return torch.tanh(self.pool(x[:, 0]))

    return Bert(), (1, 64)


@functools.lru_cache(maxsize=None)
def torch_model(name: str) -> str:
    """Path of the exported ONNX model ``name`` (written once per process)."""
    torch = _torch()
    torch.manual_seed(0)
    net, shape = {"resnet18": _resnet18, "mobilenetv2": _mobilenetv2, "vit": _vit, "bert": _bert}[name]()
    for mod in net.modules():  # trained-like statistics, so activations neither die nor explode
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.1)
                mod.running_mean.normal_(0.0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    net.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder kernel has no ONNX export
    x = torch.randint(0, 1000, shape) if name == "bert" else torch.randn(*shape)
    path = os.path.join(tempfile.mkdtemp(prefix="nnc-torch-"), f"{name}.onnx")
    with torch.no_grad():
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return path


def torch_input(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "bert":
        return {"input": rng.integers(0, 1000, (1, 64)).astype(np.int64)}
    return {"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
