"""`ssl-train` end to end: ingest a folder, pretrain, then embed with the result through the registry."""

import numpy as np
import pytest

from app.cli import main
from core.features.backbone_file import read_header
from core.features.backbones import build_backbone
from core.features.weights import file_sha256
from tests.embedding_helpers import write_colour_images


@pytest.mark.slow
def test_ssl_train_writes_a_backbone_the_registry_loads_and_embed_uses(home, tmp_path, capsys):
    images = tmp_path / "pool"
    write_colour_images(images, per_colour=6)
    assert main(["ingest", str(images)]) == 0
    out = tmp_path / "mine.safetensors"
    argv = ["ssl-train", "--epochs", "2", "--batch-size", "6", "--image-size", "16", "--out", str(out)]
    assert main(argv) == 0
    assert "trained on 18 images for 6 steps" in capsys.readouterr().out

    backbone = build_backbone(f"local:{out}")
    assert backbone.embed_dim == 320 and backbone.recipe.crop == 16
    assert main(["embed", "--backbone", f"local:{out}"]) == 0

    # Same command again: the saved state is complete, so it resumes at the end instead of starting over.
    assert main(argv) == 0
    assert "for 6 steps" in capsys.readouterr().out
    export = tmp_path / "e.npy"
    assert main(["export-embeddings", "--backbone", f"local:{out}", "--out", str(export)]) == 0
    vectors = np.load(export)
    assert vectors.shape == (18, 320)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-2)


def test_ssl_train_needs_an_ingested_project(home, capsys):
    assert main(["ssl-train", "--project", "nothing-here"]) == 1
    assert "run `python -m app.cli ingest FOLDER` first" in capsys.readouterr().err


@pytest.mark.slow
def test_ssl_train_names_a_missing_knn_folder(home, tmp_path, capsys):
    write_colour_images(tmp_path / "pool", per_colour=2)
    assert main(["ingest", str(tmp_path / "pool")]) == 0
    assert main(["ssl-train", "--epochs", "1", "--knn-folder", str(tmp_path / "nowhere")]) == 1
    assert f"labeled folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_ssl_train_continues_from_a_backbone_file(home, tmp_path, capsys):
    write_colour_images(tmp_path / "pool", per_colour=4)
    assert main(["ingest", str(tmp_path / "pool")]) == 0
    first = tmp_path / "first.safetensors"
    assert main(["ssl-train", "--epochs", "1", "--batch-size", "6", "--image-size", "16", "--out", str(first)]) == 0
    second = tmp_path / "second.safetensors"
    assert main(["ssl-train", "--epochs", "1", "--batch-size", "6", "--init", str(first), "--out", str(second)]) == 0
    # The image size came from the --init file, and the result records where it started.
    header = read_header(second)
    assert header["preprocessing"]["image_size"] == 16
    assert header["info"]["continued_from"] == {"file": "first.safetensors", "weights_sha256": file_sha256(first)}
    capsys.readouterr()

    assert main(["ssl-train", "--epochs", "1", "--init", str(first), "--image-size", "32"]) == 1
    assert "--image-size cannot be combined with --init" in capsys.readouterr().err
    not_a_backbone = tmp_path / "notes.txt"
    not_a_backbone.write_text("hello")
    assert main(["ssl-train", "--epochs", "1", "--init", str(not_a_backbone)]) == 1
    assert f"--init {not_a_backbone} is not a backbone file" in capsys.readouterr().err
