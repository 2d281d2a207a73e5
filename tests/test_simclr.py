"""Self-supervised training: loss falls, runs are reproducible and resumable, output loads and embeds."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.features.backbone_file import Preprocessing, load_backbone, save_backbone
from core.features.encode import encode_uint8
from core.ssl.augment import AugmentConfig, make_view
from core.ssl.simclr import SimCLRConfig, SimCLRTrainer, nt_xent_loss

TINY = SimCLRConfig(
    epochs=6,
    batch_size=16,
    widths=(8, 16, 16, 32),
    blocks=(1, 1, 1, 1),
    proj_hidden_dim=64,
    proj_dim=32,
    image_size=16,
    checkpoint_every=3,
)


def blob_images(n=48, size=16, seed=0):
    """Images of three kinds (bright red square, dark blue stripes, noisy green), so there is something to learn."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        kind = i % 3
        if kind == 0:
            images[i, 4:12, 4:12, 0] = 230
        elif kind == 1:
            images[i, ::3, :, 2] = 120
        else:
            images[i, ..., 1] = rng.integers(60, 200, (size, size))
        images[i] = np.clip(images[i] + rng.integers(0, 20, images[i].shape), 0, 255)
    return images


class Recorder:
    def __init__(self):
        self.losses = []

    def on_step(self, trainer, step, loss):
        self.losses.append(float(loss))


@pytest.mark.slow
def test_loss_falls_on_a_tiny_pool():
    recorder = Recorder()
    SimCLRTrainer(config=replace(TINY, epochs=10), callbacks=[recorder]).fit(blob_images())
    assert len(recorder.losses) == 30
    assert np.mean(recorder.losses[-6:]) < np.mean(recorder.losses[:6]) - 0.05


def test_augmentations_are_deterministic_under_a_seed():
    batch = torch.from_numpy(blob_images(8)).permute(0, 3, 1, 2).contiguous()
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)

    def view(seed):
        generator = torch.Generator().manual_seed(seed)
        return make_view(batch, size=16, mean=mean, std=std, config=AugmentConfig(), generator=generator)

    assert torch.equal(view(1), view(1))
    assert not torch.allclose(view(1), view(2))
    assert view(1).shape == (8, 3, 16, 16)


def test_nt_xent_prefers_matching_pairs():
    z = torch.randn(8, 4)
    assert nt_xent_loss(z, z, temperature=0.2) < nt_xent_loss(z, torch.randn(8, 4), temperature=0.2)


class StopAt:
    def __init__(self, step):
        self.step = step

    def on_step(self, trainer, step, loss):
        if step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resumed_run_continues_from_its_step_count(tmp_path):
    images = blob_images()
    uninterrupted = SimCLRTrainer(config=TINY).fit(images)

    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        SimCLRTrainer(config=TINY, callbacks=[StopAt(8)]).fit(images, checkpoint_path=str(state))
    resumed = SimCLRTrainer(config=TINY)
    resumed.fit(images, checkpoint_path=str(state))

    assert resumed.history_[0]["step"] == 10  # picked up at step 6, the last checkpoint, not at 0
    assert resumed.step_ == uninterrupted.step_ == TINY.epochs * 3
    for name, value in uninterrupted.backbone_.state_dict().items():
        torch.testing.assert_close(resumed.backbone_.state_dict()[name], value, msg=name)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path):
    state = tmp_path / "state.pt"
    SimCLRTrainer(config=replace(TINY, epochs=1)).fit(blob_images(), checkpoint_path=str(state))
    with pytest.raises(ValueError, match="another training config"):
        SimCLRTrainer(config=replace(TINY, epochs=1, temperature=0.5)).fit(blob_images(), checkpoint_path=str(state))


@pytest.mark.slow
def test_trained_backbone_round_trips_through_its_file_and_embeds(tmp_path):
    images = blob_images()
    trainer = SimCLRTrainer(config=replace(TINY, epochs=2)).fit(images)
    path = tmp_path / "backbone.safetensors"
    save_backbone(
        path,
        trainer.backbone_,
        preprocessing=Preprocessing(16, tuple(trainer.mean_), tuple(trainer.std_)),
        info={"method": "SimCLR"},
    )
    model, preprocessing, info = load_backbone(path)
    assert info == {"method": "SimCLR"} and preprocessing.image_size == 16
    embeddings = encode_uint8(model, images, mean=preprocessing.mean, std=preprocessing.std)
    expected = encode_uint8(trainer.backbone_, images, mean=trainer.mean_, std=trainer.std_)
    assert embeddings.shape == (48, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    # float16 storage costs a little precision, nothing more
    assert np.min(np.sum(embeddings * expected, axis=1)) > 0.999


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"shape \(N, 16, 16, 3\)"):
        SimCLRTrainer(config=TINY).fit(np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2 images"):
        SimCLRTrainer(config=TINY).fit(np.zeros((1, 16, 16, 3), np.uint8))


@pytest.mark.slow
def test_same_weights_always_give_the_same_file_bytes(tmp_path):
    """The file hash identifies the weights, so re-saving must not change it."""
    trainer = SimCLRTrainer(config=replace(TINY, epochs=1)).fit(blob_images())
    prep = Preprocessing(16, tuple(trainer.mean_), tuple(trainer.std_))
    info = {"a": 1, "b": [2, 3], "c": "x"}
    for name in ("one", "two"):
        save_backbone(tmp_path / name, trainer.backbone_, preprocessing=prep, info=info)
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()


@pytest.mark.slow
def test_training_continues_from_a_given_backbone():
    images = blob_images()
    first = SimCLRTrainer(config=replace(TINY, epochs=2)).fit(images)
    start = {name: value.clone() for name, value in first.backbone_.state_dict().items()}
    frozen = SimCLRTrainer(config=replace(TINY, epochs=1, base_lr=0.0), init_backbone=start).fit(images)
    fresh = SimCLRTrainer(config=replace(TINY, epochs=1, base_lr=0.0)).fit(images)
    # With no learning rate the weights are exactly where they started: the given ones, not a new init.
    torch.testing.assert_close(frozen.backbone_.stem[0].weight, start["stem.0.weight"])
    assert not torch.equal(fresh.backbone_.stem[0].weight, start["stem.0.weight"])
    with pytest.raises(ValueError, match=r"init_backbone does not fit widths=\(8, 16, 16, 64\)"):
        SimCLRTrainer(config=replace(TINY, widths=(8, 16, 16, 64)), init_backbone=start).fit(images)
