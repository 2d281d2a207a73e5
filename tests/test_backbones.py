"""Backbone registry: every name builds offline from local files, and missing files fail fast and clearly.

Nothing here downloads: the network is cut for every test (``no_network``), and the hub
architectures get random weights written by the test.
"""
import socket
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import resnet50

from core.backbones import DINO_RECIPE, SWAV_RECIPE, TORCHVISION_RECIPE, BackboneError, build_backbone
from core.weights import file_sha256
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
    first, second = write_tiny_backbone(tmp_path / "a.safetensors"), write_tiny_backbone(tmp_path / "b.safetensors", seed=1)
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
    ("name", "file_name", "recipe", "transform"),
    [
        ("resnet50", "resnet50-11ad3fa6.pth", TORCHVISION_RECIPE, lambda state: state),
        ("dino_resnet50", "dino_resnet50_pretrain.pth", DINO_RECIPE,
         lambda state: {k: v for k, v in state.items() if not k.startswith("fc.")}),
        ("swav_resnet50", "swav_800ep_pretrain.pth.tar", SWAV_RECIPE,
         lambda state: {**{f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")},
                        "module.projection_head.0.weight": torch.zeros(4, 2048),
                        "module.prototypes.weight": torch.zeros(8, 4)}),
    ],
)
def test_resnet50_backbones_load_weights_from_the_hub_cache(tmp_path, resnet_state, name, file_name, recipe, transform):
    """The checkpoint layouts of torchvision, DINO and SwAV (prefixes, dropped heads) load into resnet50 minus fc."""
    (tmp_path / "checkpoints").mkdir()
    torch.save(transform(resnet_state), tmp_path / "checkpoints" / file_name)
    backbone = build_backbone(name, hub_dir=tmp_path)
    assert backbone.embed_dim == 2048 and backbone.recipe == recipe
    images = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), reference_resnet(resnet_state)(images))


def test_torchvision_recipe_is_the_published_one():
    assert (TORCHVISION_RECIPE.resize, TORCHVISION_RECIPE.crop, TORCHVISION_RECIPE.interpolation) == (232, 224, "bilinear")
    assert (DINO_RECIPE.resize, DINO_RECIPE.crop, DINO_RECIPE.interpolation) == (256, 224, "bicubic")


def test_arch_at_path_reads_safetensors_weights(tmp_path, resnet_state):
    path = tmp_path / "my weights.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_state.items()}, str(path))
    backbone = build_backbone(f"resnet50@{path}", hub_dir=tmp_path / "empty-hub")
    assert backbone.name == f"resnet50@{path}" and backbone.identity.weights_path == path
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), reference_resnet(resnet_state)(images))


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


@pytest.mark.parametrize("name", ["dinov2_vits14", "dinov2_vitb14", "dino_vits16", "dino_resnet50", "swav_resnet50", "resnet50"])
def test_missing_weights_fail_before_torch_hub_is_called(tmp_path, monkeypatch, name):
    """With an empty hub cache every published name fails at once, naming the file, the URL and where to put it."""
    monkeypatch.setattr(torch.hub, "load", lambda *a, **k: pytest.fail("torch.hub.load was called"))
    with pytest.raises(BackboneError) as raised:
        build_backbone(name, hub_dir=tmp_path)
    message = str(raised.value)
    assert f"place it at {tmp_path}/checkpoints/" in message and "https://" in message and f"{name}@" in message


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(BackboneError, match=r"unknown backbone 'dinov3'; known: bundled, local:PATH, dinov2_vits14"):
        build_backbone("dinov3")


TINY_HUBCONF = textwrap.dedent('''
    import torch

    dependencies = ["torch"]


    class TinyViT(torch.nn.Module):
        """Stands in for the official ViT: a 14x14 patch embedding, mean-pooled to 384 features."""

        def __init__(self):
            super().__init__()
            self.patch_embed = torch.nn.Conv2d(3, 384, 14, 14)

        def forward(self, x):
            return self.patch_embed(x).mean(dim=(2, 3))


    def dinov2_vits14(*, pretrained=True, **kwargs):
        if pretrained:
            raise RuntimeError("the registry must build the architecture only and load weights itself")
        return TinyViT()
''')


def tiny_hub(tmp_path):
    repo = tmp_path / "facebookresearch_dinov2_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(TINY_HUBCONF)
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    state = {"patch_embed.weight": torch.randn(384, 3, 14, 14), "patch_embed.bias": torch.randn(384)}
    torch.save(state, tmp_path / "checkpoints" / "dinov2_vits14_pretrain.pth")
    return state


def test_vit_is_built_by_the_cached_repo_hubconf_with_our_weights(tmp_path):
    """Covers our side of the hub path: finding the repo folder torch.hub caches for
    'facebookresearch/dinov2:main', calling its hubconf entry with pretrained=False, and loading
    the cached weights strictly. The official repo's code is not available offline, so a tiny
    hubconf stands in for it; whether the real ViT code still runs with this torch is not tested."""
    state = tiny_hub(tmp_path)
    backbone = build_backbone("dinov2_vits14", hub_dir=tmp_path)
    assert backbone.embed_dim == 384 and backbone.recipe == DINO_RECIPE
    images = torch.randn(2, 3, 224, 224)
    expected = torch.nn.functional.conv2d(images, state["patch_embed.weight"], state["patch_embed.bias"], stride=14)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.model(images), expected.mean(dim=(2, 3)))


def test_vit_without_its_repo_code_names_the_folder_to_clone(tmp_path):
    tiny_hub(tmp_path)
    (tmp_path / "facebookresearch_dinov2_main" / "hubconf.py").unlink()
    with pytest.raises(BackboneError, match=rf"place a checkout at {tmp_path}/facebookresearch_dinov2_main"):
        build_backbone("dinov2_vits14", hub_dir=tmp_path)


def test_weights_of_the_wrong_width_are_refused(tmp_path):
    tiny_hub(tmp_path)
    torch.save({"patch_embed.weight": torch.randn(384, 3, 16, 16), "patch_embed.bias": torch.randn(384)},
               tmp_path / "checkpoints" / "dinov2_vits14_pretrain.pth")
    with pytest.raises(BackboneError, match=r"wrong shape \['patch_embed.weight'\]"):
        build_backbone("dinov2_vits14", hub_dir=tmp_path)
