"""framegru.io.images.read_image: every kind of still a user may hand us becomes [C, H, W] in [0, 1]."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from framegru.errors import DataError
from framegru.io.images import read_image


def test_rgb_png_keeps_channel_order_and_values(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 51, 0  # red-orange, written by PIL in RGB order
    Image.fromarray(rgb).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png", 3)
    assert image.shape == (3, 4, 6) and image.dtype == torch.float32
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.2, 0.0]))


def test_gray_becomes_three_equal_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 5), 102, np.uint8))
    image = read_image(tmp_path / "g.png", 3)
    assert image.shape == (3, 5, 5)
    assert torch.allclose(image, torch.full_like(image, 0.4))


def test_colour_to_gray_uses_bt601_luma(tmp_path):
    Image.fromarray(np.full((2, 2, 3), (255, 0, 0), np.uint8)).save(tmp_path / "red.png")
    image = read_image(tmp_path / "red.png", 1)
    assert image.shape == (1, 2, 2)
    assert torch.allclose(image, torch.full_like(image, 0.299))


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (0, 0, 255), 40
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png", 3)
    assert image.shape == (3, 3, 3)
    assert torch.allclose(image[:, 1, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_gray_with_alpha(tmp_path):
    Image.fromarray(np.dstack([np.full((3, 3), 204, np.uint8), np.zeros((3, 3), np.uint8)]), "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png", 1)
    assert image.shape == (1, 3, 3)
    assert torch.allclose(image, torch.full_like(image, 0.8), atol=1e-3)


def test_sixteen_bit_png_scales_by_65535(tmp_path):
    cv2.imwrite(str(tmp_path / "g16.png"), np.full((4, 4), 13107, np.uint16))  # 0.2 * 65535
    cv2.imwrite(str(tmp_path / "c16.png"), np.full((4, 4, 3), (0, 0, 65535), np.uint16))  # BGR: red
    gray = read_image(tmp_path / "g16.png", 1)
    red = read_image(tmp_path / "c16.png", 3)
    assert torch.allclose(gray, torch.full_like(gray, 0.2))
    assert torch.allclose(red[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_palette_png(tmp_path):
    img = Image.new("P", (2, 2))
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png", 3)
    assert torch.equal(image[:, 0, 1], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(image[:, 0, 0], torch.zeros(3))


def test_jpeg_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, :] = 255  # a white top row, stored landscape
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "phone.jpg", 1)
    assert image.shape == (1, 6, 4)  # displayed portrait
    assert image[0, :, -1].mean() > 0.9 and image[0, :, 0].mean() < 0.1  # the top row is now the right column


def test_resize_any_size(tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), np.full((300, 200, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "small.png"), np.full((5, 7), 128, np.uint8))
    for name in ("big.png", "small.png"):
        image = read_image(tmp_path / name, 3, (32, 32))
        assert image.shape == (3, 32, 32)
        assert torch.allclose(image, torch.full_like(image, 128 / 255), atol=1e-4)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_corrupt_files_are_data_errors(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(DataError, match="cannot decode image .*bad.png"):
        read_image(tmp_path / "bad.png", 3)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="image not found"):
        read_image(tmp_path / "nope.png", 3)
    with pytest.raises(DataError, match="is a folder, not an image"):
        read_image(tmp_path, 3)


PEAK_RSS = """
import resource, sys
from framegru.io.images import read_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
read_image(sys.argv[1], 3, (32, 32))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind, budget", [("png", 3.0), ("jpg", 0.5)])
def test_a_big_image_for_a_small_model_never_exists_in_float_at_full_size(tmp_path, kind, budget):
    """Peak memory of a fresh process reading a 6000x4000 RGB image for a 32x32 model, in units of the
    image's own uint8 size (72 MB): the float32 path took 8.6 (a 13000x13000 PNG peaked at 4.9 GB); a PNG
    now costs OpenCV's decoding, and a JPEG is decoded at 1/8 scale."""
    rng = np.random.default_rng(0)
    pixels = cv2.resize(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), (6000, 4000), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / f"photo.{kind}"
    cv2.imwrite(str(path), pixels)
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path)], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert int(done.stdout) < budget * pixels.nbytes
    small = read_image(path, 3, (32, 32))
    expected = cv2.resize(pixels[:, :, ::-1].astype(np.float32) / 255, (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(small.permute(1, 2, 0).numpy() - expected).max() < 0.02  # the same picture
