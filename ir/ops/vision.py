"""Detection post-processing (NonMaxSuppression) and ImageDecoder.

ImageDecoder decodes, in NumPy and the standard library only, the formats
that need no image codec: PNG (8-bit, not interlaced), BMP (uncompressed),
binary PNM and uncompressed TIFF.  JPEG, JPEG 2000 and WebP would need an
image library, which the reference interpreter does not depend on: such
images raise an ExecutionError naming the format.
"""

from __future__ import annotations

import struct
import zlib
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import check_dtype

nms = define("NonMaxSuppression",
             inputs=["boxes", "scores", "max_output_boxes_per_class?", "iou_threshold?",
                     "score_threshold?"],
             outputs=["selected_indices"], kind=OPAQUE, attrs={"center_point_box": Attr.int(0)},
             doc="Greedy per-class box selection; rows of (batch, class, box) indices.")


@nms.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, {DType.F32}, "boxes")
    check_dtype(ctx, 1, {DType.F32}, "scores")
    boxes, scores = ctx.shape(0), ctx.shape(1)
    if boxes is not None and (len(boxes) != 3 or (isinstance(boxes[2], int) and boxes[2] != 4)):
        ctx.fail("boxes must be [num_batches, spatial_dimension, 4]", found=str(ctx.input_type(0)))
    if scores is not None and len(scores) != 3:
        ctx.fail("scores must be [num_batches, num_classes, spatial_dimension]",
                 found=str(ctx.input_type(1)))
    if boxes is not None and scores is not None:
        for a, b, what in ((boxes[0], scores[0], "num_batches"), (boxes[1], scores[2], "spatial_dimension")):
            if isinstance(a, int) and isinstance(b, int) and a != b:
                ctx.fail(f"boxes and scores disagree on {what}",
                         found=f"boxes {ctx.input_type(0)}, scores {ctx.input_type(1)}")
    for i, dt, what in ((2, DType.I64, "max_output_boxes_per_class"), (3, DType.F32, "iou_threshold"),
                        (4, DType.F32, "score_threshold")):
        if ctx.has_input(i):
            check_dtype(ctx, i, {dt}, what)
            if ctx.rank(i) not in (None, 0, 1):
                ctx.fail(f"{what} must be a scalar", found=str(ctx.input_type(i)))
    if ctx.attr("center_point_box") not in (0, 1):
        ctx.fail("center_point_box must be 0 or 1", found=str(ctx.attr("center_point_box")))
    return [TensorType(DType.I64, (None, 3))]


def _corners(boxes: np.ndarray, center_point_box: int) -> np.ndarray:
    """[..., 4] boxes -> [..., 4] as (y_min, x_min, y_max, x_max), in float32.

    Corner boxes may give either diagonal; centre boxes are (x, y, w, h).
    """
    b = boxes.astype(np.float32)
    if center_point_box:
        half_w, half_h = b[..., 2] / np.float32(2), b[..., 3] / np.float32(2)
        return np.stack([b[..., 1] - half_h, b[..., 0] - half_w,
                         b[..., 1] + half_h, b[..., 0] + half_w], axis=-1)
    return np.stack([np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]),
                     np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3])], axis=-1)


def _overlaps(box: np.ndarray, others: np.ndarray, threshold: np.float32) -> np.ndarray:
    """Which ``others`` have IoU with ``box`` above ``threshold`` (float32, as onnxruntime).

    Boxes without area, or not intersecting, never suppress.
    """
    ih = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    iw = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    valid = (ih > 0) & (iw > 0) & (inter > 0) & (area > 0) & (areas > 0) & (union > 0)
    iou = inter / np.where(valid, union, np.float32(1))
    return valid & (iou > threshold)


def _select(corners: np.ndarray, scores: np.ndarray, limit: int, iou: np.float32,
            score_threshold: Optional[np.float32]) -> list[int]:
    """Greedy NMS for one (batch, class): highest score first, ties by lower index."""
    candidates = np.arange(len(scores)) if score_threshold is None else \
        np.nonzero(scores > score_threshold)[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    selected: list[int] = []
    while len(order) and len(selected) < limit:
        best, order = order[0], order[1:]
        selected.append(int(best))
        order = order[~_overlaps(corners[best], corners[order], iou)]
    return selected


def _scalar(x: Optional[np.ndarray], default):
    return default if x is None or np.size(x) == 0 else np.asarray(x).reshape(-1)[0]


@nms.reference
def _(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, *,
      center_point_box: int) -> np.ndarray:
    limit = int(_scalar(max_output_boxes_per_class, 0))  # ONNX: absent or 0 selects nothing
    iou = np.float32(_scalar(iou_threshold, 0.0))
    s_thr = None if score_threshold is None else np.float32(_scalar(score_threshold, 0.0))
    corners = _corners(boxes, center_point_box)
    rows = []
    if limit > 0:
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                rows.extend((b, c, i) for i in _select(corners[b], scores[b, c], limit, iou, s_thr))
    return np.array(rows, np.int64).reshape(-1, 3)


# --------------------------------------------------------------- ImageDecoder
decoder = define("ImageDecoder", inputs=["encoded_stream"], outputs=["image"], kind=OPAQUE,
                 attrs={"pixel_format": Attr.string("RGB")},
                 doc="Encoded image bytes -> [H, W, 3] (RGB or BGR) or [H, W, 1] (Grayscale) uint8.")


@decoder.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, {DType.U8}, "encoded_stream")
    if ctx.rank(0) not in (None, 1):
        ctx.fail("encoded_stream must be 1-D bytes", found=str(ctx.input_type(0)))
    fmt = ctx.attr("pixel_format")
    if fmt not in ("RGB", "BGR", "Grayscale"):
        ctx.fail("unknown pixel_format", expected="RGB, BGR or Grayscale", found=repr(fmt))
    return [TensorType(DType.U8, (None, None, 1 if fmt == "Grayscale" else 3))]


def _unsupported(what: str) -> ExecutionError:
    return ExecutionError(f"cannot decode {what}", subject="ImageDecoder",
                          hint="supported: 8-bit PNG, uncompressed BMP and TIFF, binary PNM")


def _png(data: bytes) -> np.ndarray:
    pos, idat, palette = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if depth != 8 or interlace or ctype not in (0, 2, 3, 4, 6):
        raise _unsupported(f"PNG with bit depth {depth}, colour type {ctype}, interlace {interlace}")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, 1 + width * channels)
    img = _png_unfilter(raw[:, 1:], raw[:, 0], channels).reshape(height, width, channels)
    if ctype == 3:
        return palette[img[..., 0]]
    return img[..., :1] if ctype == 4 else img  # drop a grey image's alpha


def _png_unfilter(rows: np.ndarray, filters: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG's per-row prediction filters (None, Sub, Up, Average, Paeth)."""
    out = np.zeros(rows.shape, np.int32)
    prev = np.zeros(rows.shape[1], np.int32)
    for y, kind in enumerate(filters):
        line = rows[y].astype(np.int32)
        if kind == 1:  # Sub: running sum of each channel along the row
            line = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            line = (line + prev) % 256
        elif kind in (3, 4):  # Average and Paeth depend on the pixel to the left: one pixel at a time
            for x in range(0, len(line), bpp):
                a = line[x - bpp:x] if x else np.zeros(bpp, np.int32)
                b = prev[x:x + bpp]
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    c = prev[x - bpp:x] if x else np.zeros(bpp, np.int32)
                    p = a + b - c
                    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
                    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                line[x:x + bpp] = (line[x:x + bpp] + pred) % 256
        elif kind != 0:
            raise _unsupported(f"PNG with filter type {kind}")
        out[y] = prev = line
    return out.astype(np.uint8)


def _bmp(data: bytes) -> np.ndarray:
    offset, = struct.unpack_from("<I", data, 10)
    dib, width, height, _, bpp, compression = struct.unpack_from("<IiiHHI", data, 14)
    if bpp not in (8, 24, 32) or compression not in (0, 3) or (compression == 3 and bpp != 32):
        raise _unsupported(f"BMP with {bpp} bits per pixel, compression {compression}")
    stride = (bpp * width + 31) // 32 * 4
    rows = np.frombuffer(data, np.uint8, stride * abs(height), offset).reshape(abs(height), stride)
    pixels = rows[:, :width * bpp // 8]
    if bpp == 8:
        colours, = struct.unpack_from("<I", data, 46)
        table = np.frombuffer(data, np.uint8, 4 * (colours or 256), 14 + dib).reshape(-1, 4)
        img = table[pixels][..., 2::-1]  # BGRx palette entries
    else:
        img = pixels.reshape(abs(height), width, bpp // 8)[..., 2::-1]  # BGR(A) -> RGB
    return img if height < 0 else img[::-1]  # positive height: rows stored bottom-up


def _pnm(data: bytes) -> np.ndarray:
    fields, pos = [], 2
    while len(fields) < 3:  # width, height, maxval, separated by whitespace and comments
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(data[start:pos]))
    width, height, maxval = fields
    if maxval > 255:
        raise _unsupported("16-bit PNM")
    channels = 3 if data[:2] == b"P6" else 1
    img = np.frombuffer(data, np.uint8, width * height * channels, pos + 1)
    return img.reshape(height, width, channels)


_TIFF_TYPES = {3: "H", 4: "I"}  # SHORT, LONG


def _tiff(data: bytes) -> np.ndarray:
    e = "<" if data[:2] == b"II" else ">"
    ifd, = struct.unpack_from(e + "I", data, 4)
    count, = struct.unpack_from(e + "H", data, ifd)
    tags: dict[int, list[int]] = {}
    for k in range(count):
        tag, typ, n, _ = struct.unpack_from(e + "HHII", data, ifd + 2 + 12 * k)
        if typ not in _TIFF_TYPES:
            continue
        fmt = e + _TIFF_TYPES[typ] * n
        at = ifd + 2 + 12 * k + 8
        if struct.calcsize(fmt) > 4:  # values that do not fit the entry live at an offset
            at, = struct.unpack_from(e + "I", data, at)
        tags[tag] = list(struct.unpack_from(fmt, data, at))
    width, height = tags[256][0], tags[257][0]
    bits, compression = tags.get(258, [1]), tags.get(259, [1])[0]
    photometric, samples = tags.get(262, [2])[0], tags.get(277, [1])[0]
    if compression != 1 or set(bits) != {8} or tags.get(284, [1])[0] != 1 or photometric not in (0, 1, 2):
        raise _unsupported(f"TIFF with compression {compression}, {bits} bits, photometric {photometric}")
    strips = b"".join(data[o:o + n] for o, n in zip(tags[273], tags[279]))
    img = np.frombuffer(strips, np.uint8, width * height * samples).reshape(height, width, samples)
    if photometric == 0:  # WhiteIsZero
        img = 255 - img
    return img


_SIGNATURES = [(b"\x89PNG\r\n\x1a\n", _png), (b"BM", _bmp), (b"P5", _pnm), (b"P6", _pnm),
               (b"II*\x00", _tiff), (b"MM\x00*", _tiff)]
_UNSUPPORTED = [(b"\xff\xd8", "JPEG"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"),
                (b"RIFF", "WebP")]


@decoder.reference
def _(encoded: np.ndarray, *, pixel_format: str) -> np.ndarray:
    data = encoded.tobytes()
    for magic, decode in _SIGNATURES:
        if data.startswith(magic):
            img = decode(data)
            break
    else:
        name = next((n for magic, n in _UNSUPPORTED if data.startswith(magic)), "this image format")
        raise _unsupported(name + (" images (they need an image codec)" if name != "this image format" else ""))
    if img.shape[2] in (2, 4):  # drop alpha
        img = img[..., :-1]
    if pixel_format == "Grayscale":
        if img.shape[2] == 1:
            return np.ascontiguousarray(img)
        # ITU-R 601 luma in Pillow's fixed point (the ONNX reference decodes with Pillow).
        r, g, b = (img[..., k].astype(np.uint32) for k in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., ::-1] if pixel_format == "BGR" else img)
