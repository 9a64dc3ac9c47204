"""A small zoo of real architectures, written in torch.nn and exported to ONNX.

Why: onnx's light models hold ConstantOfShape weights and fixed shapes, so they
say little about how the compiler copes with what exporters actually write
(Shape/Gather/Concat chains feeding Reshape, Erf-form GELU, LayerNorm,
attention masks, depthwise convolutions, ConvTranspose...).  Each model here
is the real architecture, built with seeded random weights (so a run is
reproducible and needs no download) and exported by torch's TorchScript
exporter with a *symbolic* batch dimension named ``batch`` (and ``seq`` for
BERT), so shape-polymorphic handling is exercised too.

Every model has two sizes: ``test`` (small, seconds to export and to run on
the NumPy reference interpreter) and ``bench`` (the published configuration,
or close to it, for benchmarks).

torch is needed only here and in the tests that use this module; the compiler
itself never imports it.

Command line::

    python benchmarks/models/torch_zoo.py --out DIR [--size bench] [--seed 0] [names...]
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

OPSET = 17  # opset 17 has LayerNormalization; GELU still exports in its Erf form
SIZES = ("test", "bench")


# --------------------------------------------------------------------------- ResNet-18

class BasicBlock(nn.Module):
    """ResNet's two-3x3-conv residual block, with a 1x1 projection when the shape changes."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2015) as torchvision builds it: BasicBlock x [2, 2, 2, 2].

    ``width`` is the first stage's width (64 in the paper; the stages are
    width, 2*width, 4*width, 8*width).
    """

    def __init__(self, width: int = 64, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], width
        for i, blocks in enumerate([2, 2, 2, 2]):
            cout = width * 2 ** i
            stage = [BasicBlock(cin, cout, 1 if i == 0 else 2)]
            stage += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*stage))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------- MobileNetV2

def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: to a multiple of 8, never more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=False))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) as torchvision builds it, with its ``width_mult``."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]  # t, c, n, s

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [_conv_bn_relu6(3, cin, 3, 2)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(_conv_bn_relu6(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- attention (ViT, BERT)

class SelfAttention(nn.Module):
    """Multi-head self-attention written out with MatMul and Softmax.

    nn.MultiheadAttention is avoided on purpose: what exporters write for it
    changes between torch versions; this is the form HF and timm models export.
    Shapes are read from the input (Shape/Gather in ONNX), so batch and
    sequence length stay symbolic.
    """

    def __init__(self, dim: int, heads: int, fused_qkv: bool) -> None:
        super().__init__()
        assert dim % heads == 0
        self.heads, self.head_dim = heads, dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.fused_qkv = fused_qkv
        if fused_qkv:  # timm's ViT: one Linear for q, k and v
            self.qkv = nn.Linear(dim, 3 * dim)
        else:          # BERT: three Linears
            self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n = t.shape[0], t.shape[1]
        return t.reshape(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape[0], x.shape[1], x.shape[2]
        if self.fused_qkv:
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if mask_bias is not None:
            scores = scores + mask_bias
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.proj(out)


# --------------------------------------------------------------------------- ViT

class ViTBlock(nn.Module):
    """Pre-norm transformer encoder block: x + Attn(LN(x)); x + MLP(LN(x)), MLP = Linear-GELU-Linear."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads, fused_qkv=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision Transformer (Dosovitskiy et al. 2020), timm's ``vit_tiny_patch16_224`` layout.

    Patch embedding by a strided conv, a class token, learned position
    embeddings, pre-norm encoder blocks, final LayerNorm, linear head on the
    class token.
    """

    def __init__(self, image: int = 224, patch: int = 16, dim: int = 192, depth: int = 12, heads: int = 3,
                 num_classes: int = 1000) -> None:
        super().__init__()
        assert image % patch == 0
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.5)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)          # [B, N, dim]
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# --------------------------------------------------------------------------- BERT

class BertLayer(nn.Module):
    """Post-norm BERT encoder layer: LN(x + Attn(x)); LN(h + FFN(h)), FFN with erf-GELU."""

    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.attention = SelfAttention(hidden, heads, fused_qkv=False)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(x + self.attention(x, mask_bias))
        return self.out_norm(h + self.output(F.gelu(self.intermediate(h))))


class Bert(nn.Module):
    """A BERT encoder (Devlin et al. 2018) laid out as HF's BertModel.

    Inputs ``input_ids`` and ``attention_mask`` (int64 [batch, seq]); outputs
    the last hidden state [batch, seq, hidden] and the pooler output (tanh of
    a Linear on the [CLS] position) [batch, hidden].  Word, position and
    token-type embeddings are Gathers; position ids are a slice of a buffer up
    to the (symbolic) sequence length, as HF does it.
    """

    def __init__(self, vocab: int = 30522, hidden: int = 128, layers: int = 2, heads: int = 2,
                 max_pos: int = 512, intermediate: int | None = None) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.register_buffer("position_ids", torch.arange(max_pos).unsqueeze(0), persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(1, max_pos, dtype=torch.long), persistent=False)
        self.emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList([BertLayer(hidden, heads, intermediate or 4 * hidden) for _ in range(layers)])
        self.pooler = nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq = input_ids.shape[1]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :seq])
             + self.token_type_embeddings(self.token_type_ids[:, :seq]))
        x = self.emb_norm(x)
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


# --------------------------------------------------------------------------- ConvNeXt

class LayerNorm2d(nn.Module):
    """ConvNeXt's channels-first LayerNorm: permute to NHWC, LayerNorm over C, permute back."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> permute -> LayerNorm -> Linear(4C) -> GELU -> Linear(C) -> layer scale -> permute -> + x."""

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt (Liu et al. 2022): patchify stem, 4 stages with LN + 2x2 stride-2 downsampling, pooled head."""

    def __init__(self, depths: tuple[int, ...] = (2, 2, 6, 2), dims: tuple[int, ...] = (40, 80, 160, 320),
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.downsample = nn.ModuleList([nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0]))])
        for i in range(len(dims) - 1):
            self.downsample.append(nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, 2)))
        self.stages = nn.ModuleList([nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)])
                                     for d, n in zip(dims, depths)])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean(dim=(2, 3))))


# --------------------------------------------------------------------------- U-Net

def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with same-padding convs and BatchNorm (the common modern form).

    ``depth`` max-pool downsamplings, doubling channels from ``base``; the
    decoder goes up by ConvTranspose 2x2 stride 2 (``upsample="transpose"``,
    the paper's up-convolution) or bilinear Resize plus a 1x1 conv
    (``upsample="bilinear"``), concatenates the skip, and applies a double
    conv.  Output: per-pixel class logits at the input resolution.
    """

    def __init__(self, in_ch: int = 3, classes: int = 2, base: int = 64, depth: int = 4,
                 upsample: str = "transpose") -> None:
        super().__init__()
        chans = [base * 2 ** i for i in range(depth + 1)]
        self.inc = _double_conv(in_ch, chans[0])
        self.downs = nn.ModuleList([_double_conv(chans[i], chans[i + 1]) for i in range(depth)])
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for i in reversed(range(depth)):
            if upsample == "transpose":
                self.ups.append(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, 2))
            elif upsample == "bilinear":
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                              nn.Conv2d(chans[i + 1], chans[i], 1)))
            else:
                raise ValueError(f"upsample must be 'transpose' or 'bilinear', not {upsample!r}")
            self.up_convs.append(_double_conv(2 * chans[i], chans[i]))
        self.outc = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inc(x)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(F.max_pool2d(x, 2))
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips)):
            x = conv(torch.cat([skip, up(x)], dim=1))
        return self.outc(x)


# --------------------------------------------------------------------------- the zoo

@dataclass(frozen=True)
class InputSpec:
    """One model input: dtype, and shape with ``"batch"``/``"seq"`` standing for the symbolic dims."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    high: int = 0  # int64 inputs: values drawn in [0, high); 0 means a 0/1 attention mask


@dataclass(frozen=True)
class ModelSpec:
    """How to build, feed and export one zoo model.

    ``sizes[size]`` holds the builder's keyword arguments plus ``seq`` for
    sequence models (the sequence length of example inputs); ``inputs(kw)``
    returns the input specs for those arguments.
    """

    builder: Callable[..., nn.Module]
    inputs: Callable[[dict[str, Any]], list[InputSpec]]
    outputs: dict[str, tuple[str | None, ...]]  # output name -> symbolic dim names (None: static)
    sizes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def dynamic_axes(self, kw: dict[str, Any]) -> dict[str, dict[int, str]]:
        axes = {i.name: {d: s for d, s in enumerate(i.shape) if isinstance(s, str)} for i in self.inputs(kw)}
        axes.update({o: {d: s for d, s in enumerate(dims) if s} for o, dims in self.outputs.items()})
        return axes


def _image(kw: dict[str, Any]) -> list[InputSpec]:
    return [InputSpec("input", ("batch", 3, kw["image"], kw["image"]))]


def _bert_inputs(kw: dict[str, Any]) -> list[InputSpec]:
    return [InputSpec("input_ids", ("batch", "seq"), "int64", kw["vocab"]),
            InputSpec("attention_mask", ("batch", "seq"), "int64")]


_LOGITS = {"logits": ("batch", None)}

MODELS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec(
        ResNet18, _image, _LOGITS,
        {"test": dict(width=16, num_classes=10, image=64),
         "bench": dict(width=64, num_classes=1000, image=224)}),
    "mobilenet_v2": ModelSpec(
        MobileNetV2, _image, _LOGITS,
        {"test": dict(width_mult=0.25, num_classes=10, image=64),
         "bench": dict(width_mult=1.0, num_classes=1000, image=224)}),
    "vit_tiny": ModelSpec(
        ViT, _image, _LOGITS,
        {"test": dict(image=32, patch=8, dim=64, depth=2, heads=4, num_classes=10),
         "bench": dict(image=224, patch=16, dim=192, depth=12, heads=3, num_classes=1000)}),
    "bert_tiny": ModelSpec(
        Bert, _bert_inputs, {"last_hidden_state": ("batch", "seq", None), "pooler_output": ("batch", None)},
        {"test": dict(vocab=1000, hidden=64, layers=2, heads=2, max_pos=128, seq=16),
         "bench": dict(vocab=30522, hidden=128, layers=2, heads=2, max_pos=512, seq=128)}),
    "convnext_style": ModelSpec(
        ConvNeXt, _image, _LOGITS,
        {"test": dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), num_classes=10, image=32),
         # convnext_atto (timm): the smallest published ConvNeXt
         "bench": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), num_classes=1000, image=224)}),
    "unet_style": ModelSpec(
        UNet, _image, {"logits": ("batch", None, None, None)},
        {"test": dict(base=8, depth=3, classes=2, image=32),
         "bench": dict(base=32, depth=4, classes=2, image=256)}),
}


def _builder_kwargs(spec: ModelSpec, kw: dict[str, Any]) -> dict[str, Any]:
    """The size's keys the builder takes (``image`` and ``seq`` may shape only the inputs)."""
    params = inspect.signature(spec.builder).parameters
    return {k: v for k, v in kw.items() if k in params}


def _spec(name: str, size: str) -> tuple[ModelSpec, dict[str, Any]]:
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    spec = MODELS[name]
    return spec, spec.sizes[size]


def _randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Make every parameter matter: default inits leave norms at 1/0 and layer scale at 1e-6.

    Norm scales become U(0.5, 1.5), shifts N(0, 0.1), layer scales U(0.2, 1);
    a zero bias or a near-zero layer scale would hide a wrong broadcast.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d)):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)
            if isinstance(mod, ConvNeXtBlock):
                mod.gamma.copy_(torch.rand(mod.gamma.shape, generator=gen) * 0.8 + 0.2)
            if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and mod.bias is not None:
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.05)


def _calibrate_batchnorm(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Set BatchNorm running statistics to one batch's statistics, like a trained net's.

    With the default running mean 0 / variance 1, activations of a randomly
    initialized deep net drift to huge or tiny values and saturate; calibrated
    statistics keep them near unit scale so comparisons are meaningful.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()
    with torch.no_grad():
        model(*inputs)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def example_inputs(name: str, batch: int = 2, size: str = "test", seed: int = 0,
                   seq: int | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs for ``name``: N(0, 1) images, or token ids and a padding mask.

    The attention mask pads the tail of every row but the first (each row
    keeps at least its first token), so masking is exercised.  ``seq``
    overrides the size's sequence length for sequence models.
    """
    spec, kw = _spec(name, size)
    dims = {"batch": batch, "seq": seq or kw.get("seq", 0)}
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for inp in spec.inputs(kw):
        shape = tuple(dims[d] if isinstance(d, str) else d for d in inp.shape)
        if inp.dtype == "float32":
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
        elif inp.high:
            feeds[inp.name] = rng.integers(0, inp.high, size=shape, dtype=np.int64)
        else:
            b, s = shape
            lengths = np.concatenate([[s], rng.integers(1, s + 1, size=b - 1)]) if b else np.zeros(0, int)
            feeds[inp.name] = (np.arange(s)[None, :] < lengths[:, None]).astype(np.int64)
    return feeds


def build_model(name: str, size: str = "test", seed: int = 0) -> nn.Module:
    """The torch model ``name`` in eval mode, its weights a function of ``seed`` only.

    The global torch RNG state is left as it was.
    """
    spec, kw = _spec(name, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.builder(**_builder_kwargs(spec, kw))
        gen = torch.Generator().manual_seed(seed + 1)
        _randomize(model, gen)
        calib = example_inputs(name, batch=8, size=size, seed=seed + 2)
        _calibrate_batchnorm(model, tuple(torch.from_numpy(v) for v in calib.values()))
    return model.eval()


def run_torch(model: nn.Module, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` on ``feeds`` (in input order) and return its outputs as NumPy arrays."""
    with torch.no_grad():
        out = model(*(torch.from_numpy(v) for v in feeds.values()))
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]


def export(name: str, path: str | Path, size: str = "test", seed: int = 0) -> Path:
    """Export ``name`` to ONNX at ``path`` with the batch (and sequence) dims symbolic; returns the path.

    Traced at batch 2 (never 1, so nothing specializes on a broadcastable
    batch) by the TorchScript exporter at opset ``OPSET``, constants folded.
    """
    spec, kw = _spec(name, size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_model(name, size, seed)
    feeds = example_inputs(name, batch=2, size=size, seed=seed)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(feeds), output_names=list(spec.outputs),
                          dynamic_axes=spec.dynamic_axes(kw), do_constant_folding=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export the torch model zoo to ONNX (symbolic batch dim).")
    ap.add_argument("names", nargs="*", help=f"models to export (default: all of {', '.join(MODELS)})")
    ap.add_argument("--out", required=True, type=Path,
                    help="output folder; writes NAME.onnx (NAME_bench.onnx for --size bench)")
    ap.add_argument("--size", choices=SIZES, default="test")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = args.names or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    for n in names:
        t0 = time.perf_counter()
        suffix = "" if args.size == "test" else f"_{args.size}"
        path = export(n, args.out / f"{n}{suffix}.onnx", args.size, args.seed)
        mb = path.stat().st_size / 1e6
        print(f"{n:16s} {args.size:5s} {mb:8.2f} MB  {time.perf_counter() - t0:6.2f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
