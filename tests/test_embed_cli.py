"""embed, similar and export-embeddings through the CLI, on a small folder and a random-init backbone file."""

import csv
import os

import numpy as np
import pytest

from app.cli import main
from app.commands import embed as embed_command
from core.features.backbones import identify_backbone
from tests.embedding_helpers import store_held_elsewhere, write_colour_images, write_tiny_backbone


@pytest.fixture
def pool(home, tmp_path, capsys):
    images = tmp_path / "images"
    write_colour_images(images, per_colour=5)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(40))
    assert main(["ingest", str(images)]) == 0
    capsys.readouterr()
    return images


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_embed_similar_export_round_trip(pool, tmp_path, capsys):
    backbone = f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}"
    code, out, _ = run(capsys, "embed", "--backbone", backbone, "--batch-size", "4", "--workers", "1")
    assert code == 0 and "embedded: 15" in out and "errors: 0" in out and "index: exact, 15 items" in out

    code, by_path, _ = run(capsys, "similar", "red_0.jpg", "-k", "4", "--backbone", backbone)
    assert code == 0 and "query: item" in by_path and "red_0.jpg" in by_path
    neighbours = [line.split()[-1] for line in by_path.splitlines()[2:]]
    assert len(neighbours) == 4 and "red_0.jpg" not in neighbours
    assert all(name.startswith("red_") for name in neighbours), by_path

    code, out, _ = run(capsys, "export-embeddings", "--out", str(tmp_path / "out" / "E.npy"), "--backbone", backbone)
    vectors = np.load(tmp_path / "out" / "E.npy")
    with open(tmp_path / "out" / "E.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert code == 0 and vectors.shape == (15, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=2e-3)
    assert [int(row["item_id"]) for row in table] == sorted(int(row["item_id"]) for row in table)
    assert {row["path"] for row in table} == {p.name for p in pool.iterdir() if p.name != "broken.png"}

    red = next(row for row in table if row["path"] == "red_0.jpg")
    by_id = run(capsys, "similar", red["item_id"], "-k", "4", "--backbone", backbone)[1]
    by_file = run(capsys, "similar", str(pool / "red_0.jpg"), "-k", "4", "--backbone", backbone)[1]
    assert by_id == by_file == by_path


@pytest.mark.slow
def test_new_images_are_embedded_incrementally(pool, tmp_path, capsys):
    backbone = f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}"
    assert run(capsys, "embed", "--backbone", backbone, "--workers", "0")[0] == 0
    write_colour_images(tmp_path / "images" / "more", per_colour=2, seed=7)
    assert main(["ingest", str(pool)]) == 0
    code, out, _ = run(capsys, "embed", "--backbone", backbone, "--workers", "0")
    assert code == 0 and "embedded: 6" in out and "already embedded: 15" in out and "index: exact, 21 items" in out


@pytest.mark.slow
def test_other_weights_get_their_own_embeddings(pool, tmp_path, capsys):
    first = f"local:{write_tiny_backbone(tmp_path / 'a.safetensors')}"
    second = f"local:{write_tiny_backbone(tmp_path / 'b.safetensors', seed=3)}"
    run(capsys, "embed", "--backbone", first, "--workers", "0")
    code, out, _ = run(capsys, "embed", "--backbone", second, "--workers", "0")
    assert code == 0 and "embedded: 15" in out and "already embedded: 0" in out
    assert len(list((pool.parent / "home" / "embeddings" / "project-1").iterdir())) == 2


def test_missing_weights_and_missing_embeddings_are_clear_errors(pool, tmp_path, capsys):
    code, _, err = run(capsys, "embed", "--backbone", "dinov2_vits14")
    assert code == 1 and "`python -m app.cli fetch-backbone dinov2_vits14` downloads it to " in err
    assert f"{tmp_path}/torch/hub/checkpoints" in err and "(about 85 MB)" in err
    backbone = f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}"
    code, _, err = run(capsys, "similar", "red_0.jpg", "--backbone", backbone)
    assert code == 1 and "run `python -m app.cli embed --backbone" in err
    code, _, err = run(capsys, "embed", "--backbone", backbone, "--half")
    assert code == 1 and "half precision runs on cuda or mps" in err


def test_similar_names_an_unknown_item(pool, tmp_path, capsys):
    backbone = f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}"
    run(capsys, "embed", "--backbone", backbone, "--workers", "0")
    code, _, err = run(capsys, "similar", "purple.jpg", "--backbone", backbone)
    assert code == 1 and "no item of project 'default' has path 'purple.jpg'" in err
    code, _, err = run(capsys, "similar", "broken.png", "--backbone", backbone)
    assert code == 1 and "(broken.png) has no local:" in err


@pytest.mark.slow
def test_embed_waits_while_another_process_writes_the_embeddings_and_then_adds_what_is_missing(
    pool, tmp_path, capsys, monkeypatch
):
    backbone = f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}"
    folder = pool.parent / "home" / "embeddings" / "project-1" / identify_backbone(backbone).key
    release = tmp_path / "release"
    with store_held_elsewhere(backbone, folder, release):
        code, _, err = run(capsys, "embed", "--backbone", backbone, "--workers", "0", "--wait", "0")
        assert code == 1 and "another process is writing" in err and "wait for it to finish" in err

        told = embed_command.say_waiting  # the holder is let go once the command says it waits
        monkeypatch.setattr(embed_command, "say_waiting", lambda folder: (told(folder), release.touch()))
        code, out, err = run(capsys, "embed", "--backbone", backbone, "--workers", "0", "--wait", "1")
    assert "waiting for it to finish" in err
    assert code == 0 and "embedded: 15" in out
