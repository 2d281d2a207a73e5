"""Images as they were shot: EXIF orientation and high bit depths, alike for display, embedding,
class-folder reading and ingest's recorded sizes; and JPEG draft decoding for small inputs."""

import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, JpegImagePlugin
from sqlalchemy import select

from core.features.backbones import build_backbone
from core.images.preprocess import Recipe, load_image
from core.transfer.class_folder import decode_square
from services.features.item_images import render
from services.ingest.image_check import check_image_file
from services.ingest.ingest import ingest
from storage.models import Item, ItemStatus

REPO_ROOT = Path(__file__).resolve().parents[1]
SQUARE_32 = Recipe(resize=32, crop=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), square=True)

# The picture as it should be seen: four solid quadrants, so any rotation or flip moves a colour.
QUADRANTS = np.array([[(230, 20, 20), (20, 210, 30)], [(30, 40, 230), (240, 240, 240)]], dtype=np.uint8)
UPRIGHT = np.repeat(np.repeat(QUADRANTS, 24, axis=0), 16, axis=1)  # 48 tall, 32 wide: portrait
# EXIF orientation -> how the stored pixels turn into the upright picture (numpy, not Pillow).
TO_UPRIGHT = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1)}
FROM_UPRIGHT = {3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, 1), 8: lambda a: np.rot90(a, -1)}


def write_oriented_jpeg(path, orientation):
    """A JPEG whose stored pixels must be turned by ``orientation`` to show ``UPRIGHT``."""
    stored = np.ascontiguousarray(FROM_UPRIGHT[orientation](UPRIGHT))
    np.testing.assert_array_equal(TO_UPRIGHT[orientation](stored), UPRIGHT)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, format="JPEG", quality=95, exif=exif)
    return path


def quadrant_colours(pixels):
    """(2, 2, 3) mean colour of the centre of each quadrant of an (H, W, 3) array."""
    height, width = pixels.shape[:2]
    rows = [slice(height // 8, 3 * height // 8), slice(5 * height // 8, 7 * height // 8)]
    cols = [slice(width // 8, 3 * width // 8), slice(5 * width // 8, 7 * width // 8)]
    return np.array([[pixels[r, c].reshape(-1, 3).mean(axis=0) for c in cols] for r in rows])


def rendered(path, side):
    return np.asarray(Image.open(io.BytesIO(render(path, side))).convert("RGB"))


def embedded(path, recipe=SQUARE_32):
    return load_image(path, recipe).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_oriented_jpeg_is_shown_embedded_and_read_the_right_way_up(tmp_path, orientation):
    path = write_oriented_jpeg(tmp_path / "photo.jpg", orientation)

    shown = rendered(path, 96)
    assert shown.shape == (96, 64, 3)  # portrait, as shot
    np.testing.assert_allclose(quadrant_colours(shown), QUADRANTS, atol=20)
    np.testing.assert_allclose(quadrant_colours(embedded(path)), QUADRANTS, atol=20)
    np.testing.assert_allclose(quadrant_colours(decode_square(path, 32)), QUADRANTS, atol=20)


@pytest.mark.parametrize("orientation", [6, 8])
def test_ingest_records_the_size_after_orientation(db, settings, tmp_path, orientation):
    path = write_oriented_jpeg(tmp_path / "root" / "photo.jpg", orientation)
    facts = check_image_file(path, size_bytes=path.stat().st_size, max_bytes=10**6, max_pixels=10**6)
    assert (facts.width, facts.height) == (32, 48)

    ingest(db, settings, source=tmp_path / "root", project="p")
    with db.reading() as session:
        item = session.scalars(select(Item)).one()
    assert item.status is ItemStatus.OK and (item.width, item.height) == (32, 48)


def write_16_bit_rgb_png(path, pixels):
    """A PNG of bit depth 16, colour type 2 (Pillow writes no 16-bit RGB)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def gradient(low, high, dtype):
    """A (32, 64) left-to-right ramp from ``low`` to ``high``."""
    return np.tile(np.linspace(low, high, 64), (32, 1)).astype(dtype)


def assert_grey_ramp(pixels, *, channels_equal=True):
    """A 0..255 ramp: mean near the middle, dark on the left, bright on the right (not clipped)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    assert abs(pixels.mean() - 127.5) < 8, pixels.mean()
    assert pixels[:, : pixels.shape[1] // 8].mean() < 40 and pixels[:, -pixels.shape[1] // 8 :].mean() > 215
    if channels_equal:
        assert np.ptp(pixels, axis=2).max() <= 1


HIGH_BIT_DEPTH_FILES = {
    "grey16.png": lambda path: Image.fromarray(gradient(0, 65535, np.uint16)).save(path),  # mode I;16
    "grey16.tiff": lambda path: Image.fromarray(gradient(0, 65535, np.uint16)).save(path),
    "float01.tiff": lambda path: Image.fromarray(gradient(0, 1, np.float32)).save(path),  # mode F
    "float_any.tiff": lambda path: Image.fromarray(gradient(-50, 1000, np.float32)).save(path),
}


@pytest.mark.parametrize("name", sorted(HIGH_BIT_DEPTH_FILES))
def test_high_bit_depth_grey_is_scaled_not_clipped(tmp_path, name):
    path = tmp_path / name
    HIGH_BIT_DEPTH_FILES[name](path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "F")

    assert_grey_ramp(rendered(path, 64))
    assert_grey_ramp(embedded(path))
    middle = decode_square(path, 32).astype(float)  # the ramp's middle half: 64..191
    assert abs(middle.mean() - 127.5) < 8 and middle[:, :4].mean() < middle[:, -4:].mean() - 96
    facts = check_image_file(path, size_bytes=path.stat().st_size, max_bytes=10**6, max_pixels=10**6)
    assert (facts.width, facts.height) == (64, 32)


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    ramp = gradient(0, 65535, np.uint16)
    pixels = np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 32768)], axis=2)
    path = write_16_bit_rgb_png(tmp_path / "rgb16.png", pixels)

    for decoded in (rendered(path, 64), embedded(path)):
        assert_grey_ramp(decoded[..., :1], channels_equal=False)
        assert_grey_ramp(decoded[:, ::-1, 1:2], channels_equal=False)
        assert abs(decoded[..., 2].mean() - 128) <= 1


def smooth_photo(width, height, *, seed=0):
    """A smooth colour image, like a photo at a distance (JPEG scaling barely changes it)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


@pytest.fixture
def draft_sizes(monkeypatch):
    """The size of every JPEG right after Pillow's ``draft`` picked its scale."""
    sizes, draft = [], JpegImagePlugin.JpegImageFile.draft

    def recording_draft(image, mode, size):
        result = draft(image, mode, size)
        sizes.append(image.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    return sizes


@pytest.mark.parametrize("orientation", [1, 6])
def test_large_jpeg_decodes_reduced_but_never_below_twice_what_the_recipe_resizes_to(
    tmp_path, draft_sizes, orientation
):
    path = tmp_path / "large.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    smooth_photo(1024, 700).save(path, quality=95, exif=exif)
    recipe = Recipe(resize=64, crop=56, mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bicubic")

    reduced = load_image(path, recipe)

    assert draft_sizes == [(256, 175)]  # 1/4 scale: both sides still >= 2 x 64
    full = load_image(path, replace(recipe, draft=False))
    assert draft_sizes == [(256, 175)]
    assert reduced.shape == full.shape == (3, 56, 56)
    assert (reduced.float() - full.float()).abs().mean() < 2


def test_jpeg_under_four_times_the_recipe_size_decodes_in_full(tmp_path, draft_sizes):
    path = tmp_path / "photo.jpg"
    smooth_photo(1000, 750).save(path, quality=90)
    recipe = Recipe(resize=256, crop=224, mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bicubic")

    load_image(path, recipe)

    assert draft_sizes == [(1000, 750)]


@pytest.mark.slow
def test_bundled_backbone_inputs_of_the_cifar_sample_images_are_unchanged():
    recipe = build_backbone("bundled").recipe
    paths = sorted((REPO_ROOT / "sample_data" / "images").rglob("*.jpg"))[::15]
    for path in paths:
        with Image.open(path) as image:  # the decode before draft and orientation handling
            before = torch.from_numpy(
                np.array(image.convert("RGB").resize((recipe.resize, recipe.resize), Image.Resampling.BILINEAR))
            ).permute(2, 0, 1)
        assert torch.equal(load_image(path, recipe), before), path
