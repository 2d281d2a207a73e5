"""`ssl-train` end to end: ingest a folder, pretrain, then embed with the result through the registry."""
import numpy as np

from app.cli import main
from core.backbones import build_backbone
from tests.embedding_helpers import write_colour_images


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


def test_ssl_train_names_a_missing_knn_folder(home, tmp_path, capsys):
    write_colour_images(tmp_path / "pool", per_colour=2)
    assert main(["ingest", str(tmp_path / "pool")]) == 0
    assert main(["ssl-train", "--epochs", "1", "--knn-folder", str(tmp_path / "nowhere")]) == 1
    assert f"labeled folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
