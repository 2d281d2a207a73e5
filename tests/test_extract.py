"""Embedding extraction into a store: correct vectors, bad files, incremental runs, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.features.backbones import build_backbone
from core.features.embedding_store import EmbeddingStore, StoreBusy
from core.features.extract import ExtractConfig, extract_embeddings
from core.images.preprocess import load_image, normalise
from tests.embedding_helpers import store_held_elsewhere, write_colour_images, write_tiny_backbone

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def backbone(tmp_path):
    return build_backbone(f"local:{write_tiny_backbone(tmp_path / 'tiny.safetensors')}")


def reference_vectors(backbone, paths):
    images = torch.stack([load_image(path, backbone.recipe) for path in paths])
    with torch.inference_mode():
        features = backbone.model(normalise(images, backbone.recipe))
    return torch.nn.functional.normalize(features, dim=1).numpy()


def open_store(folder, backbone, dtype="float16"):
    return EmbeddingStore.open_for_writing(folder, backbone=backbone.describe(), dim=backbone.embed_dim, dtype=dtype)


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_vectors_match_the_model_and_bad_files_are_reported_one_each(tmp_path, backbone, num_workers):
    paths = write_colour_images(tmp_path / "images")
    (tmp_path / "images" / "random.jpg").write_bytes(os.urandom(500))
    (tmp_path / "images" / "truncated.png").write_bytes(paths[1].read_bytes()[:60])
    all_paths = [*paths, tmp_path / "images" / "random.jpg", tmp_path / "images" / "truncated.png"]
    ids = np.arange(100, 100 + len(all_paths))
    with open_store(tmp_path / "store", backbone) as store:
        report = extract_embeddings(
            backbone,
            store,
            ids,
            [str(p) for p in all_paths],
            config=ExtractConfig(batch_size=5, num_workers=num_workers),
        )
    assert report.embedded == len(paths) and report.already_done == 0
    assert sorted(f.item_id for f in report.failures) == [ids[-2], ids[-1]]
    assert any("random.jpg: cannot be decoded" in f.message for f in report.failures)
    assert any("truncated.png: cannot be decoded" in f.message for f in report.failures)
    reader = EmbeddingStore.open_for_reading(tmp_path / "store")
    done_ids, vectors = reader.done()
    np.testing.assert_array_equal(done_ids, ids[: len(paths)])
    np.testing.assert_allclose(vectors, reference_vectors(backbone, paths), atol=2e-3)
    assert reader.vectors().dtype == np.float16
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert meta["backbone"]["weights_sha256"] == backbone.identity.weights_sha256
    assert meta["backbone"]["recipe"]["crop"] == 16 and meta["dim"] == 32 and meta["dtype"] == "float16"


def test_new_items_are_embedded_incrementally_and_failures_retried(tmp_path, backbone):
    paths = [str(p) for p in write_colour_images(tmp_path / "images")]
    ids = np.arange(len(paths)) * 10
    calls = []
    with open_store(tmp_path / "store", backbone) as store:
        first = extract_embeddings(backbone, store, ids[:5], paths[:5], config=ExtractConfig(num_workers=0))
        second = extract_embeddings(
            backbone,
            store,
            ids,
            paths,
            config=ExtractConfig(num_workers=0, batch_size=2),
            progress=lambda done, total: calls.append((done, total)),
        )
        third = extract_embeddings(backbone, store, ids, paths, config=ExtractConfig(num_workers=0))
    assert (first.embedded, second.embedded, second.already_done, third.embedded) == (5, len(paths) - 5, 5, 0)
    assert calls[-1] == (len(paths) - 5, len(paths) - 5) and len(calls) == 4
    _, vectors = EmbeddingStore.open_for_reading(tmp_path / "store").done()
    np.testing.assert_allclose(vectors, reference_vectors(backbone, paths), atol=2e-3)


@pytest.mark.slow
def test_a_failed_item_is_retried_on_the_next_run(tmp_path, backbone):
    paths = [str(p) for p in write_colour_images(tmp_path / "images", per_colour=1)]
    good = Path(paths[0]).read_bytes()
    Path(paths[0]).write_bytes(b"not an image")
    with open_store(tmp_path / "store", backbone) as store:
        first = extract_embeddings(backbone, store, [1, 2, 3], paths, config=ExtractConfig(num_workers=0))
        Path(paths[0]).write_bytes(good)
        second = extract_embeddings(backbone, store, [1, 2, 3], paths, config=ExtractConfig(num_workers=0))
    assert (first.embedded, len(first.failures), second.embedded, second.already_done) == (2, 1, 1, 2)


@pytest.mark.slow
def test_a_store_of_other_weights_is_refused_and_one_writer_at_a_time(tmp_path, backbone):
    with open_store(tmp_path / "store", backbone):
        with pytest.raises(StoreBusy, match="this process is already writing"):
            open_store(tmp_path / "store", backbone)
    other = build_backbone(f"local:{write_tiny_backbone(tmp_path / 'other.safetensors', seed=5)}")
    with pytest.raises(ValueError, match="never mix"):
        open_store(tmp_path / "store", other)
    with pytest.raises(ValueError, match="never mix"):
        open_store(tmp_path / "store", backbone, dtype="float32")


def test_half_precision_on_cpu_is_a_clear_error(tmp_path, backbone):
    with open_store(tmp_path / "store", backbone) as store, pytest.raises(ValueError, match="cuda or mps"):
        extract_embeddings(backbone, store, [1], ["x.png"], config=ExtractConfig(half=True))


CHILD = textwrap.dedent("""
    import sys, time
    from core.features.backbones import build_backbone
    from core.features.embedding_store import EmbeddingStore
    from core.features.extract import ExtractConfig, extract_embeddings

    backbone_path, store_folder, *paths = sys.argv[1:]
    backbone = build_backbone(f"local:{backbone_path}")
    store = EmbeddingStore.open_for_writing(store_folder, backbone=backbone.describe(), dim=backbone.embed_dim)
    extract_embeddings(backbone, store, list(range(len(paths))), paths,
                       config=ExtractConfig(batch_size=2, num_workers=1, flush_items=4),
                       progress=lambda done, total: time.sleep(0.3))
""")


@pytest.mark.slow
def test_a_run_killed_midway_is_resumed_where_it_stopped(tmp_path):
    paths = [str(p) for p in write_colour_images(tmp_path / "images", per_colour=8)]
    backbone_path = write_tiny_backbone(tmp_path / "tiny.safetensors")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(backbone_path), str(tmp_path / "store"), *paths],
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    done_path, deadline = tmp_path / "store" / "done.u8", time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if done_path.exists() and sum(done_path.read_bytes()) >= 8:
            break
        time.sleep(0.05)
    backbone = build_backbone(f"local:{backbone_path}")
    with pytest.raises(StoreBusy, match="another process is writing"):
        open_store(tmp_path / "store", backbone)
    os.kill(child.pid, signal.SIGKILL)  # its DataLoader worker lives on for a while and must not block the rerun
    child.wait()
    done_at_kill = sum(done_path.read_bytes())
    assert 8 <= done_at_kill < len(paths), "the child should have been killed midway"

    with open_store(tmp_path / "store", backbone) as store:
        report = extract_embeddings(
            backbone, store, list(range(len(paths))), paths, config=ExtractConfig(num_workers=0)
        )
    assert report.already_done == done_at_kill and report.embedded == len(paths) - done_at_kill
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the orphaned worker, if it is still there
    except ProcessLookupError:
        pass
    ids, vectors = EmbeddingStore.open_for_reading(tmp_path / "store").done()
    np.testing.assert_array_equal(ids, np.arange(len(paths)))
    np.testing.assert_allclose(vectors, reference_vectors(backbone, paths), atol=2e-3)


@pytest.mark.slow
def test_a_writer_waits_for_another_process_to_release_the_store_or_gives_up_after_its_wait(tmp_path):
    backbone_path = write_tiny_backbone(tmp_path / "tiny.safetensors")
    backbone = build_backbone(f"local:{backbone_path}")
    release = tmp_path / "release"
    with store_held_elsewhere(f"local:{backbone_path}", tmp_path / "store", release) as holder:
        started = time.monotonic()
        with pytest.raises(StoreBusy, match=r"another process is writing .* \(waited 0.5 s\)"):
            EmbeddingStore.open_for_writing(
                tmp_path / "store", backbone=backbone.describe(), dim=backbone.embed_dim, wait_seconds=0.5
            )
        assert time.monotonic() - started >= 0.5

        waits = []

        def waiting():  # the holder finishes while this writer waits
            waits.append(1)
            release.touch()

        with EmbeddingStore.open_for_writing(
            tmp_path / "store", backbone=backbone.describe(), dim=backbone.embed_dim, wait_seconds=60, on_wait=waiting
        ) as store:
            assert store.dim == backbone.embed_dim
        assert waits == [1]  # told once that it waits
        assert holder.wait(30) == 0


@pytest.mark.slow
def test_a_writer_waits_for_another_thread_of_this_process_to_close_the_store(tmp_path, backbone):
    first = open_store(tmp_path / "store", backbone)
    waits, opened = [], []

    def second_writer():
        with EmbeddingStore.open_for_writing(
            tmp_path / "store",
            backbone=backbone.describe(),
            dim=backbone.embed_dim,
            wait_seconds=60,
            on_wait=lambda: waits.append(1),
        ) as store:
            opened.append(store.dim)

    thread = threading.Thread(target=second_writer)
    thread.start()
    deadline = time.monotonic() + 30
    while not waits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert opened == [] and waits == [1]  # waiting, not failing
    first.close()
    thread.join(30)
    assert opened == [backbone.embed_dim]
    with open_store(tmp_path / "store", backbone):  # and released again
        pass
