"""A user's real download gives the original implementation's features, through banana's registry.

Each published backbone is built with its original code (FAIR's DINOv2 from the ``dinov2``
wheel, torchvision's ``resnet50`` for DINO, SwAV and torchvision's own weights), given random
weights, and saved in the published file format under the published file name. Banana loads
that file by name (from the torch hub cache, as ``fetch-backbone`` places it) or as
``ARCH@PATH``, embeds real photos with its own decoding and recipe, and must give the original
model's output (DINOv2: the normed CLS token; ResNets: the average-pooled features) on the same
photos preprocessed by the published evaluation recipe, written here with torchvision
transforms and independent of banana's code.
"""

import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.models import ResNet50_Weights, resnet50

from core.features.backbones import build_backbone
from core.images.preprocess import load_image, normalise
from tests.dinov2_wheel import dinov2_vision_transformer  # noqa: F401 (fixture)
from tests.hymenoptera_photos import hymenoptera_photos  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def evaluation_transform(resize, interpolation):
    """Resize the shorter side, centre-crop 224, ImageNet normalisation: the DINO/DINOv2/SwAV linear evaluations."""
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=interpolation),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


# The published evaluation recipes: DINOv2 make_classification_eval_transform, DINO eval_linear.py
# (Resize(256, interpolation=3)), SwAV eval_linear.py (Resize(256)), torchvision's own for its V2 weights.
PUBLISHED_RECIPES = {
    "dinov2_vits14": evaluation_transform(256, transforms.InterpolationMode.BICUBIC),
    "dino_resnet50": evaluation_transform(256, transforms.InterpolationMode.BICUBIC),
    "swav_resnet50": evaluation_transform(256, transforms.InterpolationMode.BILINEAR),
    "resnet50": ResNet50_Weights.IMAGENET1K_V2.transforms(),
}


@pytest.fixture(scope="module")
def photos(hymenoptera_photos):  # noqa: F811 (fixture)
    """Two ant and two bee photos of the usual ~500x375 size.

    Banana decodes larger JPEGs at a reduced scale (``Recipe.draft``, a documented speed-up the
    published recipes do not have); at this size that is a no-op, so the inputs must match exactly.
    """
    chosen = []
    for folder in ("ants", "bees"):
        small = [
            path
            for path in sorted((hymenoptera_photos / "val" / folder).glob("*.jpg"))
            if max(Image.open(path).size) <= 1000
        ]
        chosen += small[:2]
    return chosen


def published_inputs(name, paths):
    """The photos as the published evaluation of ``name`` feeds them to its model."""
    recipe = PUBLISHED_RECIPES[name]
    return torch.stack([recipe(Image.open(path).convert("RGB")) for path in paths])


@torch.inference_mode()
def banana_features(name, paths, *, hub_dir):
    """Banana's features of the photos: its registry, its decoding, its recipe."""
    backbone = build_backbone(name, hub_dir=hub_dir)
    images = normalise(torch.stack([load_image(path, backbone.recipe) for path in paths]), backbone.recipe)
    return backbone.model(images)


def assert_same_features(actual, expected):
    assert actual.shape == expected.shape
    assert expected.abs().max() > 0.1, "the original model's features are degenerate: nothing is compared"
    torch.testing.assert_close(actual, expected, atol=TOLERANCE, rtol=0)


def randomize_(model, *, scale):
    """Replace every 1-d parameter and buffer (norms, biases, layer scales) with random values around its own.

    Initial values such as LayerNorm's ones and zeros, DINOv2's constant layer scale or BatchNorm's
    unit running statistics would hide a tensor loaded into the wrong place; random ones do not.
    """
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and tensor.ndim == 1:
                noise = torch.rand_like(tensor) if name.endswith("running_var") else torch.randn_like(tensor)
                tensor.copy_(tensor + scale * noise)


@pytest.fixture(scope="module")
def original_dinov2(dinov2_vision_transformer):  # noqa: F811 (fixture)
    """FAIR's ViT-S/14 as torch hub's ``dinov2_vits14`` builds it, with random, non-trivial weights."""
    torch.manual_seed(0)
    model = dinov2_vision_transformer.vit_small(patch_size=14, img_size=518, init_values=1.0, block_chunks=0)
    randomize_(model, scale=0.2)
    with torch.no_grad():  # a position table far from zero: it is resampled from 37x37 to 16x16 patches
        model.pos_embed.normal_(std=0.5)
        model.cls_token.normal_(std=0.5)
        model.mask_token.normal_(std=0.5)
    return model.eval()


@pytest.mark.parametrize("where", ["hub cache", "ARCH@PATH"])
def test_dinov2_vits14_gives_fair_models_cls_features(tmp_path, photos, original_dinov2, where):
    """FAIR's forward returns the normed CLS token; banana's embedding of a photo is that vector."""
    (tmp_path / "checkpoints").mkdir()
    checkpoint = tmp_path / "checkpoints" / "dinov2_vits14_pretrain.pth"
    torch.save(original_dinov2.state_dict(), checkpoint)
    name = "dinov2_vits14" if where == "hub cache" else f"dinov2_vits14@{checkpoint}"
    with torch.inference_mode():
        expected = original_dinov2(published_inputs("dinov2_vits14", photos))
    assert_same_features(
        banana_features(name, photos, hub_dir=tmp_path if where == "hub cache" else tmp_path / "none"), expected
    )


def without_fc(state):
    return {key: value for key, value in state.items() if not key.startswith("fc.")}


def swav_checkpoint(state):
    """SwAV's published layout: its DataParallel ``module.`` prefix, projection head and 3,000 prototypes, no fc."""
    torch.manual_seed(1)
    head = {
        "projection_head.0.weight": torch.randn(2048, 2048) * 0.01,
        "projection_head.0.bias": torch.randn(2048),
        "projection_head.1.weight": torch.randn(2048),
        "projection_head.1.bias": torch.randn(2048),
        "projection_head.1.running_mean": torch.randn(2048),
        "projection_head.1.running_var": torch.rand(2048),
        "projection_head.1.num_batches_tracked": torch.tensor(1000),
        "projection_head.3.weight": torch.randn(128, 2048) * 0.01,
        "projection_head.3.bias": torch.randn(128),
        "prototypes.weight": torch.randn(3000, 128),
    }
    return {f"module.{key}": value for key, value in {**without_fc(state), **head}.items()}


@pytest.fixture(scope="module")
def original_resnet50():
    """torchvision's ResNet-50 with random weights and non-trivial BatchNorm statistics; fc as its hub loaders leave it."""
    torch.manual_seed(0)
    model = resnet50(weights=None)
    randomize_(model, scale=0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "file_name", "published_layout"),
    [
        ("dino_resnet50", "dino_resnet50_pretrain.pth", without_fc),  # DINO: a torchvision state dict without fc
        ("swav_resnet50", "swav_800ep_pretrain.pth.tar", swav_checkpoint),
        ("resnet50", "resnet50-11ad3fa6.pth", dict),  # torchvision's IMAGENET1K_V2 file, fc included
    ],
)
def test_resnet50_checkpoints_give_torchvisions_pooled_features(
    tmp_path, photos, original_resnet50, name, file_name, published_layout
):
    """The original loaders (DINO's and SwAV's hubconf) build torchvision's resnet50; features are its avgpool output."""
    (tmp_path / "checkpoints").mkdir()
    torch.save(published_layout(original_resnet50.state_dict()), tmp_path / "checkpoints" / file_name)
    features = torch.nn.Sequential(*list(original_resnet50.children())[:-1], torch.nn.Flatten())  # fc = Identity
    with torch.inference_mode():
        expected = features(published_inputs(name, photos))
    assert_same_features(banana_features(name, photos, hub_dir=tmp_path), expected)
