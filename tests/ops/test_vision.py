"""NonMaxSuppression against onnxruntime; ImageDecoder against images encoded here."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from ir.errors import CompilerError
from tests.ops.ortcheck import Const, check_op, make_model, run_ours


def random_boxes(batches, n, *, center=False, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (batches, n, 2))
    wh = rng.uniform(0.5, 4, (batches, n, 2))
    if center:
        return np.concatenate([xy + wh / 2, wh], -1).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], -1)
    if flip:  # the other diagonal: (y2, x2, y1, x1)
        boxes = boxes[..., [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def scalars(k, iou, score):
    return [None if k is None else np.array([k], np.int64),
            None if iou is None else np.array([iou], np.float32),
            None if score is None else np.array([score], np.float32)]


@pytest.mark.parametrize("batches,classes,n", [(1, 1, 30), (2, 3, 50), (3, 2, 7)])
@pytest.mark.parametrize("k,iou,score", [(5, 0.5, None), (100, 0.3, 0.4), (3, 0.0, 0.9), (50, 0.7, 0.0)])
def test_random(batches, classes, n, k, iou, score):
    boxes = random_boxes(batches, n, seed=n)
    scores = np.random.default_rng(k).uniform(0, 1, (batches, classes, n)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, *scalars(k, iou, score)], {}, opset=11)


@pytest.mark.parametrize("center", [0, 1])
def test_center_point_box_and_flipped(center):
    boxes = random_boxes(2, 40, center=bool(center), flip=not center, seed=3)
    scores = np.random.default_rng(4).uniform(0, 1, (2, 2, 40)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, *scalars(10, 0.4, 0.2)],
             {"center_point_box": center}, opset=11)


def test_tied_scores_and_identical_boxes():
    boxes = np.tile(np.array([[0, 0, 1, 1]], np.float32), (1, 6, 1))
    boxes[0, 3:] += 5
    scores = np.full((1, 1, 6), 0.5, np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores, *scalars(6, 0.5, None)], {}, opset=11)
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [0, 0, 3]])


def test_optional_inputs_omitted():
    boxes, scores = random_boxes(1, 10), np.ones((1, 1, 10), np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores], {}, opset=11)
    assert out[0].shape == (0, 3)  # no max_output_boxes_per_class: nothing selected
    check_op("NonMaxSuppression", [boxes, scores, np.array([4], np.int64)], {}, opset=11)
    check_op("NonMaxSuppression", [boxes, scores, np.array([4], np.int64), None,
                                   np.array([0.5], np.float32)], {}, opset=11)


def test_constant_thresholds_and_opset10():
    boxes = random_boxes(1, 25, seed=8)
    scores = np.random.default_rng(9).uniform(0, 1, (1, 2, 25)).astype(np.float32)
    check_op("NonMaxSuppression", [boxes, scores, Const(np.array(7, np.int64)),
                                   Const(np.array(0.25, np.float32)), Const(np.array(0.1, np.float32))],
             {}, opset=10)


def test_degenerate_boxes_never_suppress():
    boxes = np.array([[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2.1]]], np.float32)
    scores = np.array([[[0.9, 0.8, 0.7, 0.6]]], np.float32)
    out = check_op("NonMaxSuppression", [boxes, scores, *scalars(10, 0.5, None)], {}, opset=11)
    np.testing.assert_array_equal(out[0][:, 2], [0, 1, 2])


# ------------------------------------------------------------------ errors
def test_boxes_need_four_coordinates():
    with pytest.raises(CompilerError, match="spatial_dimension, 4"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 3), np.float32), np.zeros((1, 1, 5), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])


def test_mismatched_box_counts():
    with pytest.raises(CompilerError, match="disagree on spatial_dimension"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 4), np.float32), np.zeros((1, 1, 6), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])


def test_float16_boxes_rejected():
    with pytest.raises(CompilerError, match="boxes"):
        check_op("NonMaxSuppression", [np.zeros((1, 5, 4), np.float16), np.zeros((1, 1, 5), np.float32)],
                 {}, opset=11, expected=[np.zeros((0, 3), np.int64)])


# --------------------------------------------------------------- ImageDecoder
# onnxruntime has no ImageDecoder kernel: images are encoded here, by small writers
# following each format's specification, and must decode to the original pixels.
IMG = np.random.default_rng(11).integers(0, 256, (7, 5, 3), dtype=np.uint8)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_png(img: np.ndarray, ctype: int, filters, palette=None) -> bytes:
    """PNG with the given filter type per row (cycled), computed the slow, obvious way."""
    h, w, ch = img.shape
    raw = img.reshape(h, w * ch).astype(int)
    out = b""
    for y in range(h):
        f = filters[y % len(filters)]
        row = []
        for x in range(w * ch):
            a = raw[y, x - ch] if x >= ch else 0
            b = raw[y - 1, x] if y else 0
            c = raw[y - 1, x - ch] if y and x >= ch else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][f]
            row.append((raw[y, x] - pred) % 256)
        out += bytes([f] + row)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)
    plte = _chunk(b"PLTE", palette.tobytes()) if palette is not None else b""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + plte +
            _chunk(b"IDAT", zlib.compress(out)) + _chunk(b"IEND", b""))


def encode_bmp(img: np.ndarray, bpp: int, top_down: bool = False) -> bytes:
    h, w, _ = img.shape
    stride = (bpp * w + 31) // 32 * 4
    palette = b""
    if bpp == 8:  # grey palette, pixels index it
        palette = bytes(v for i in range(256) for v in (i, i, i, 0))
        px = img[..., :1]
    else:
        px = img[..., ::-1]
        if bpp == 32:
            px = np.concatenate([px, np.full((h, w, 1), 255, np.uint8)], -1)
    rows = [px[y].tobytes().ljust(stride, b"\0") for y in range(h)]
    pixels = b"".join(rows if top_down else rows[::-1])
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    dib = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, 0, len(pixels), 0, 0,
                      256 if bpp == 8 else 0, 0)
    return header + dib + palette + pixels


def encode_tiff(img: np.ndarray, endian: str) -> bytes:
    h, w, ch = img.shape
    e = "<" if endian == "II" else ">"
    pixels = img.tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 2 if ch == 3 else 1), (273, 4, 1, 8), (277, 3, 1, ch),
               (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd = struct.pack(e + "H", len(entries))
    for tag, typ, n, v in entries:
        value = struct.pack(e + ("H" if typ == 3 else "I"), v).ljust(4, b"\0")
        ifd += struct.pack(e + "HHI", tag, typ, n) + value
    head = (b"II*\0" if endian == "II" else b"MM\0*") + struct.pack(e + "I", 8 + len(pixels))
    return head + pixels + ifd + struct.pack(e + "I", 0)


def decode(data: bytes, pixel_format="RGB") -> np.ndarray:
    arr = np.frombuffer(data, np.uint8).copy()
    out = run_ours(make_model("ImageDecoder", [arr], {"pixel_format": pixel_format}, opset=20),
                   {"in0": arr})[0]
    assert out.dtype == np.uint8 and out.shape[2] == (1 if pixel_format == "Grayscale" else 3)
    return out


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4]])
def test_png_filters(filters):
    np.testing.assert_array_equal(decode(encode_png(IMG, 2, filters)), IMG)


def test_png_colour_types():
    rgba = np.concatenate([IMG, np.full((7, 5, 1), 9, np.uint8)], -1)
    np.testing.assert_array_equal(decode(encode_png(rgba, 6, [4, 3])), IMG)
    grey = IMG[..., :1]
    np.testing.assert_array_equal(decode(encode_png(grey, 0, [1, 4])), np.repeat(grey, 3, 2))
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    index = (IMG[..., :1] % 3).astype(np.uint8)
    np.testing.assert_array_equal(decode(encode_png(index, 3, [0], palette)), palette[index[..., 0]])


@pytest.mark.parametrize("bpp,top_down", [(24, False), (24, True), (32, False)])
def test_bmp(bpp, top_down):
    img = IMG[:, :4] if bpp == 32 else IMG  # odd widths exercise row padding for 24 bpp
    np.testing.assert_array_equal(decode(encode_bmp(img, bpp, top_down)), img)


def test_bmp_palette():
    np.testing.assert_array_equal(decode(encode_bmp(IMG, 8)), np.repeat(IMG[..., :1], 3, 2))


def test_pnm_with_comment_and_grey():
    p6 = b"P6\n# a comment\n5 7\n255\n" + IMG.tobytes()
    np.testing.assert_array_equal(decode(p6), IMG)
    p5 = b"P5 5 7 255\n" + IMG[..., 0].tobytes()
    np.testing.assert_array_equal(decode(p5, "Grayscale"), IMG[..., :1])


@pytest.mark.parametrize("endian", ["II", "MM"])
def test_tiff(endian):
    np.testing.assert_array_equal(decode(encode_tiff(IMG, endian)), IMG)


def test_bgr_and_grayscale_conversion():
    data = encode_png(IMG, 2, [0])
    np.testing.assert_array_equal(decode(data, "BGR"), IMG[..., ::-1])
    r, g, b = (IMG[..., k].astype(np.uint32) for k in range(3))
    grey = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
    np.testing.assert_array_equal(decode(data, "Grayscale"), grey[..., None])


def test_jpeg_is_a_clear_runtime_error():
    with pytest.raises(CompilerError, match="cannot decode JPEG images"):
        decode(b"\xff\xd8\xff\xe0" + bytes(20))


def test_image_decoder_bad_pixel_format():
    with pytest.raises(CompilerError, match="unknown pixel_format"):
        decode(encode_png(IMG, 2, [0]), "HSV")
