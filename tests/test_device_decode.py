"""Decoding JPEGs on the model's device (ExtractConfig.gpu_decode), run here on the CPU:
the same torchvision calls as on CUDA, with libjpeg instead of nvjpeg."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import core.features.extract
from core.features.backbones import build_backbone
from core.features.embedding_store import EmbeddingStore
from core.features.extract import ExtractConfig, extract_embeddings
from core.images.preprocess import JpegBytes, Recipe, decode_on_device, load_image, read_for_device
from tests.embedding_helpers import write_tiny_backbone

CPU = torch.device("cpu")
RECIPE = Recipe(resize=48, crop=40, mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bicubic", draft=False)


def smooth_photo(width, height, *, seed=0):
    coarse = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def write_jpeg(path, *, orientation=1, seed=0, size=(160, 110)):
    exif = Image.Exif()
    exif[0x0112] = orientation
    smooth_photo(*size, seed=seed).save(path, quality=95, exif=exif)
    return path


def damaged_jpeg(path):
    """A JPEG whose header reads but whose entropy-coded data is garbage."""
    data = write_jpeg(path, seed=9).read_bytes()
    scan = data.index(b"\xff\xda") + 20  # into the first scan's data
    path.write_bytes(data[:scan] + bytes(range(256)) * 4 + data[scan + 1024 :])
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_decode_matches_pillow_the_right_way_up(tmp_path, orientation):
    path = write_jpeg(tmp_path / "photo.jpg", orientation=orientation)

    raw = read_for_device(path, RECIPE)
    assert isinstance(raw, JpegBytes) and raw.orientation == orientation
    batch, failed = decode_on_device([raw], RECIPE, CPU)

    assert failed == {} and batch.shape == (1, 3, 40, 40) and batch.dtype == torch.uint8
    # Tensor and Pillow resizing differ a little; a wrong turn differs by tens of levels.
    assert (batch[0].float() - load_image(path, RECIPE).float()).abs().mean() < 2


def test_other_images_decode_in_the_worker_and_a_damaged_jpeg_fails_alone(tmp_path):
    png = tmp_path / "a.png"
    smooth_photo(90, 70, seed=1).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    smooth_photo(90, 70, seed=2).convert("CMYK").save(cmyk)
    good, bad = write_jpeg(tmp_path / "good.jpg", seed=3), damaged_jpeg(tmp_path / "bad.jpg")

    items = [read_for_device(path, RECIPE) for path in (png, good, bad, cmyk)]
    assert [type(item) for item in items] == [torch.Tensor, JpegBytes, JpegBytes, torch.Tensor]
    batch, failed = decode_on_device(items, RECIPE, CPU)

    assert list(failed) == [2] and isinstance(failed[2], OSError)
    assert batch.shape == (3, 3, 40, 40)
    for row, path in zip(batch, (png, good, cmyk)):
        assert (row.float() - load_image(path, RECIPE).float()).abs().mean() < 2


@pytest.mark.slow
def test_extraction_with_jpeg_bytes_embeds_as_the_worker_decode_does(tmp_path, monkeypatch):
    tiny = build_backbone(f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}")
    backbone = replace(tiny, recipe=replace(tiny.recipe, draft=False))
    folder = tmp_path / "images"
    folder.mkdir()
    paths = [write_jpeg(folder / f"{i}.jpg", orientation=1 + i % 8, seed=i, size=(60 + 7 * i, 50)) for i in range(10)]
    smooth_photo(40, 30, seed=20).save(folder / "p.png")
    paths += [folder / "p.png", damaged_jpeg(folder / "bad.jpg")]
    ids = list(range(len(paths)))

    def embed(store_folder):
        with EmbeddingStore.open_for_writing(
            store_folder, backbone=backbone.describe(), dim=backbone.embed_dim, dtype="float32"
        ) as store:
            report = extract_embeddings(
                backbone, store, ids, [str(p) for p in paths], config=ExtractConfig(batch_size=5, num_workers=2)
            )
        return report, EmbeddingStore.open_for_reading(store_folder).done()

    worker_report, (worker_ids, worker_vectors) = embed(tmp_path / "worker")
    files = core.features.extract._ImageFiles
    # gpu_decode reads JPEG bytes only on cuda; force that path onto the CPU.
    monkeypatch.setattr(
        core.features.extract, "_ImageFiles", lambda paths, recipe, jpeg_bytes: files(paths, recipe, jpeg_bytes=True)
    )
    device_report, (device_ids, device_vectors) = embed(tmp_path / "device")

    for report in (worker_report, device_report):
        assert report.embedded == 11 and [f.item_id for f in report.failures] == [11]
        assert "bad.jpg: cannot be decoded for embedding" in report.failures[0].message
    np.testing.assert_array_equal(device_ids, worker_ids)
    assert (device_vectors * worker_vectors).sum(axis=1).min() > 0.99
