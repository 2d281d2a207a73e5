"""Backbone registry: one factory turns a backbone name into a ready feature extractor.

Names
-----
``bundled``
    The backbone shipped in ``sample_data/backbone/backbone.safetensors`` (the offline default).
``local:PATH``
    A backbone file in our own safetensors format (``core.backbone_file``).
``dinov2_vits14``, ``dinov2_vitb14``, ``dino_vits16``, ``dino_resnet50``, ``swav_resnet50``, ``resnet50``
    Published backbones; weights come from the torch hub cache (``<hub_dir>/checkpoints/``).
``ARCH@PATH``
    A published architecture with weights from the file PATH (``.pth``/``.pt`` state_dict, read with
    ``weights_only=True``, or ``.safetensors``), e.g. ``dinov2_vits14@/data/dinov2_vits14_pretrain.pth``.

Nothing is ever downloaded: files are looked for before torch.hub is called, and a missing one
raises :class:`BackboneError` naming the file to place and where. The ViTs are built by the official
``hubconf.py`` of a facebookresearch repo already in the hub cache, loaded from that folder
(``source="local"``) with ``pretrained=False``, so torch.hub never resolves a branch or asks to
trust a repo; the weights are then loaded here, strictly. The ResNet-50s are torchvision's
``resnet50`` with ``fc`` removed, which is exactly what the DINO and SwAV hubconfs build.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from torchvision.models import ResNet50_Weights, resnet50

from core.backbone_file import load_backbone
from core.preprocess import Recipe
from core.weights import file_sha256, load_weights_strictly, read_state_dict

BUNDLED_PATH = Path(__file__).resolve().parents[1] / "sample_data" / "backbone" / "backbone.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DINO and DINOv2 evaluate at Resize(256, bicubic) + CenterCrop(224); SwAV uses the bilinear default.
DINO_RECIPE = Recipe(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic")
SWAV_RECIPE = Recipe(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")
_TORCHVISION_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
_TV = _TORCHVISION_WEIGHTS.transforms()  # the recipe torchvision publishes with these weights
TORCHVISION_RECIPE = Recipe(resize=_TV.resize_size[0], crop=_TV.crop_size[0], mean=tuple(_TV.mean),
                            std=tuple(_TV.std), interpolation=_TV.interpolation.value)


class BackboneError(Exception):
    """A backbone cannot be built; the message names the file and the fix."""


@dataclass(frozen=True)
class HubSpec:
    """Where a published backbone's code and weights come from.

    Parameters
    ----------
    repo : str or None
        ``owner/name:ref`` of the repo whose ``hubconf.py`` builds the architecture;
        None for torchvision's ``resnet50`` with ``fc`` removed.
    entry : str
        The hubconf function.
    weights_url : str
        Where the weights file is published; its last part is the file name in the hub cache.
    embed_dim : int
    recipe : Recipe
    strip_prefixes, ignore_prefixes : tuple of str
        See :func:`core.weights.load_weights_strictly`.
    """

    repo: str | None
    entry: str
    weights_url: str
    embed_dim: int
    recipe: Recipe
    strip_prefixes: tuple[str, ...] = ()
    ignore_prefixes: tuple[str, ...] = ()

    @property
    def weights_file(self):
        return self.weights_url.rsplit("/", 1)[-1]


_FAIR = "https://dl.fbaipublicfiles.com"
HUB_SPECS = {
    "dinov2_vits14": HubSpec("facebookresearch/dinov2:main", "dinov2_vits14",
                             f"{_FAIR}/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth", 384, DINO_RECIPE),
    "dinov2_vitb14": HubSpec("facebookresearch/dinov2:main", "dinov2_vitb14",
                             f"{_FAIR}/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth", 768, DINO_RECIPE),
    "dino_vits16": HubSpec("facebookresearch/dino:main", "dino_vits16",
                           f"{_FAIR}/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth", 384, DINO_RECIPE),
    "dino_resnet50": HubSpec(None, "dino_resnet50", f"{_FAIR}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
                             2048, DINO_RECIPE, ignore_prefixes=("fc.",)),
    "swav_resnet50": HubSpec(None, "resnet50", f"{_FAIR}/deepcluster/swav_800ep_pretrain.pth.tar", 2048, SWAV_RECIPE,
                             strip_prefixes=("module.",), ignore_prefixes=("projection_head.", "prototypes.", "fc.")),
    "resnet50": HubSpec(None, "resnet50", _TORCHVISION_WEIGHTS.url, 2048, TORCHVISION_RECIPE, ignore_prefixes=("fc.",)),
}
BACKBONE_NAMES = ("bundled", "local:PATH", *HUB_SPECS, "ARCH@PATH")


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
        return dict(name=self.name, weights_path=str(self.identity.weights_path),
                    weights_sha256=self.identity.weights_sha256, embed_dim=self.embed_dim,
                    recipe=self.recipe.as_dict())


@dataclass(frozen=True)
class _Parsed:
    name: str
    slug: str
    spec: HubSpec | None  # None: a banana backbone file
    weights: Path | None  # None: the hub cache


def identify_backbone(name, *, hub_dir=None, bundled_path=BUNDLED_PATH):
    """Find the weights file a backbone name uses and hash it, without building the model.

    Parameters
    ----------
    name : str
        See the module docstring.
    hub_dir : path-like, optional
        torch hub folder; default ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``).
    bundled_path : path-like
        Where ``bundled`` is read from.

    Returns
    -------
    BackboneIdentity

    Raises
    ------
    BackboneError
        Unknown name, or the file is missing (the message says where to place it).
    """
    parsed = _parse(name, bundled_path)
    weights = _weights_path(parsed, _hub_dir(hub_dir))
    return BackboneIdentity(name=parsed.name, slug=parsed.slug, weights_path=weights, weights_sha256=file_sha256(weights))


def build_backbone(name, *, hub_dir=None, bundled_path=BUNDLED_PATH):
    """Build a backbone by name; never downloads, never returns a model with random weights.

    Parameters
    ----------
    name : str
        See the module docstring.
    hub_dir : path-like, optional
        torch hub folder; default ``torch.hub.get_dir()``.
    bundled_path : path-like
        Where ``bundled`` is read from.

    Returns
    -------
    Backbone

    Raises
    ------
    BackboneError
        Unknown name, missing code or weights, or weights that do not fit the architecture.
    """
    parsed, hub = _parse(name, bundled_path), _hub_dir(hub_dir)
    identity = identify_backbone(name, hub_dir=hub, bundled_path=bundled_path)
    weights = identity.weights_path
    if parsed.spec is None:
        model, embed_dim, recipe = _load_banana_file(weights)
    else:
        model = _make_architecture(parsed.spec, hub, parsed.name)
        try:
            load_weights_strictly(model, read_state_dict(weights), path=weights,
                                  strip_prefixes=parsed.spec.strip_prefixes,
                                  ignore_prefixes=parsed.spec.ignore_prefixes)
        except ValueError as error:
            raise BackboneError(str(error)) from None
        embed_dim, recipe = parsed.spec.embed_dim, parsed.spec.recipe
    model = model.float().eval()
    _check_output(model, embed_dim, recipe, parsed.name)
    return Backbone(identity=identity, model=model, embed_dim=embed_dim, recipe=recipe)


def _parse(name, bundled_path):
    if name == "bundled":
        return _Parsed("bundled", "bundled", None, Path(bundled_path))
    if name.startswith("local:"):
        path = Path(name.removeprefix("local:")).expanduser().absolute()
        return _Parsed(f"local:{path}", _slug(f"local-{path.stem}"), None, path)
    arch, at, path = name.partition("@")
    if arch in HUB_SPECS:
        if not at:
            return _Parsed(arch, arch, HUB_SPECS[arch], None)
        weights = Path(path).expanduser().absolute()
        return _Parsed(f"{arch}@{weights}", _slug(f"{arch}-{weights.stem}"), HUB_SPECS[arch], weights)
    raise BackboneError(f"unknown backbone {name!r}; known: {', '.join(BACKBONE_NAMES)} "
                        f"(ARCH one of {', '.join(HUB_SPECS)})")


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:48]


def _hub_dir(hub_dir):
    return Path(hub_dir if hub_dir is not None else torch.hub.get_dir())


def _weights_path(parsed, hub):
    if parsed.weights is not None:
        if not parsed.weights.is_file():
            fix = ("restore it (git checkout -- sample_data/backbone) or train one with `python -m app.cli ssl-train`"
                   if parsed.name == "bundled" else "check the path, or pick another --backbone")
            raise BackboneError(f"backbone {parsed.name}: weights file {parsed.weights} does not exist. Fix: {fix}.")
        return parsed.weights
    path = hub / "checkpoints" / parsed.spec.weights_file
    if not path.is_file():
        raise BackboneError(
            f"backbone {parsed.name} needs its weights file {parsed.spec.weights_file}, which is not in the torch hub "
            f"cache. Fix: download {parsed.spec.weights_url} on a machine with internet and place it at {path}, "
            f"or name the file: --backbone {parsed.name}@/path/to/{parsed.spec.weights_file}.")
    return path


def _load_banana_file(path):
    try:
        model, preprocessing, _info = load_backbone(path)
    except (ValueError, SafetensorError) as error:
        raise BackboneError(f"{path} is not a usable banana backbone file ({error}). Fix: for a plain state_dict, "
                            f"name its architecture: --backbone ARCH@{path} (ARCH one of {', '.join(HUB_SPECS)})."
                            ) from None
    recipe = Recipe(resize=preprocessing.image_size, crop=preprocessing.image_size, mean=preprocessing.mean,
                    std=preprocessing.std, square=True)
    return model, model.embed_dim, recipe


def _repo_dir(spec, hub):
    """The folder torch.hub caches ``owner/name:ref`` in: ``<hub>/owner_name_ref``."""
    owner_name, ref = spec.repo.split(":")
    return hub / "_".join([*owner_name.split("/"), ref.replace("/", "_")])


def _make_architecture(spec, hub, name):
    """The architecture with its initial (random) weights; the caller loads the real ones."""
    if spec.repo is None:
        model = resnet50(weights=None)
        model.fc = torch.nn.Identity()
        return model
    repo_dir = _repo_dir(spec, hub)
    if not (repo_dir / "hubconf.py").is_file():
        owner_name, ref = spec.repo.split(":")
        raise BackboneError(
            f"backbone {name} needs the code of github.com/{owner_name} (ref {ref}), which is not in the torch hub "
            f"cache. Fix: place a checkout at {repo_dir} (git clone https://github.com/{owner_name} {repo_dir}), "
            f"or run torch.hub.load('{spec.repo}', '{spec.entry}') once on a machine with internet.")
    try:
        return torch.hub.load(str(repo_dir), spec.entry, source="local", pretrained=False)
    except Exception as error:  # the repo's own code failed; say where it lives
        raise BackboneError(f"backbone {name}: {repo_dir}/hubconf.py failed to build {spec.entry} "
                            f"({type(error).__name__}: {error}). Fix: update or re-clone that folder.") from error


@torch.inference_mode()
def _check_output(model, embed_dim, recipe, name):
    output = model(torch.zeros(1, 3, recipe.crop, recipe.crop))
    if tuple(output.shape) != (1, embed_dim):
        raise BackboneError(f"backbone {name} gives features of shape {tuple(output.shape)[1:]}, expected "
                            f"({embed_dim},). Fix: name the architecture the weights belong to.")
