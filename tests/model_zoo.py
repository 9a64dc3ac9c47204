"""Models for tests: onnx's light ImageNet models with random weights, and the digits models.

The light models compute their weights with ConstantOfShape (every weight is
one repeated value), so their outputs hardly depend on the computation and
checks on them are weak.  ``randomized_light_model`` replaces each weight by
an initializer of random values scaled like a trained network's (He
initialization for conv/gemm weights, values near 1 for per-channel
parameters), so a wrong channel order or a bad tile shows.
"""

from __future__ import annotations

import glob
import math
import os
from functools import lru_cache

import numpy as np
import onnx
from onnx import numpy_helper

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT = sorted(os.path.basename(p)[len("light_"):-len(".onnx")]
               for p in glob.glob(os.path.join(LIGHT_DIR, "light_*.onnx")))
SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def light_path(name: str) -> str:
    return os.path.join(LIGHT_DIR, f"light_{name}.onnx")


def _random_weight(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:]) if len(shape) > 2 else shape[0]
        return (rng.standard_normal(shape) * math.sqrt(2.0 / max(1, fan_in))).astype(np.float32)
    return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)


@lru_cache(maxsize=None)
def randomized_light_model(name: str, seed: int = 0, logits: bool = True) -> onnx.ModelProto:
    """The light model ``name`` with every ConstantOfShape weight replaced by random values.

    With ``logits`` the model returns the input of its final Softmax (random
    weights saturate the Softmax, and a saturated output hides errors).
    """
    model = onnx.load(light_path(name))
    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep, new_inits, shape_inputs = [], [], set()
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = tuple(int(d) for d in inits[node.input[0]])
            new_inits.append(numpy_helper.from_array(_random_weight(shape, rng), node.output[0]))
            shape_inputs.add(node.input[0])
        else:
            keep.append(node)
    still_read = {i for n in keep for i in n.input}
    unused = shape_inputs - still_read
    del model.graph.node[:]
    model.graph.node.extend(keep)
    old = [t for t in model.graph.initializer if t.name not in unused]
    del model.graph.initializer[:]
    model.graph.initializer.extend(old + new_inits)
    inputs = [i for i in model.graph.input if i.name not in unused]
    if model.ir_version < 4:  # IR-3 models list their initializers among the inputs
        inputs += [onnx.helper.make_tensor_value_info(t.name, onnx.TensorProto.FLOAT, list(t.dims))
                   for t in new_inits]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    if logits:
        _return_softmax_input(model)
    return model


def _return_softmax_input(model: onnx.ModelProto) -> None:
    out = model.graph.output[0]
    last = next((n for n in model.graph.node if out.name in n.output), None)
    if last is None or last.op_type != "Softmax":
        return
    model.graph.node.remove(last)
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))


def light_input(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name not in inits:
            dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
            feeds[vi.name] = rng.random(dims, dtype=np.float32)
    return feeds
