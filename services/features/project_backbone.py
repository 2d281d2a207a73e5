"""Which backbone embeds a project's images: chosen once from what this machine has, recorded on
the project, shown, and switchable.

The default, in order: a fetched self-supervised backbone (:data:`SSL_PREFERENCE`); for photos,
the ImageNet photo backbone that ships with pip (:data:`PHOTO_BACKBONE`); ``bundled`` for tiny
images, the 32x32 CIFAR kind it was trained on. The choice is recorded in ``project_setting``
once the project has images (before that it is provisional), so every server on the database
and every later start uses the same features. ``BANANA_BACKBONE`` overrides it for one process.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from core.features.backbones import FETCH_COMMAND, BackboneError, identify_backbone, published_spec, weights_available
from services.config import Settings
from services.database import Database
from services.errors import UserError
from storage import queries
from storage.items import item_queries
from storage.settings import setting_queries

BACKBONE_SETTING = "backbone"
# Fetched self-supervised backbones, preferred in this order: best features per CPU second first.
SSL_PREFERENCE = ("dinov2_vits14", "dinov2_vitb14", "dino_vits16", "dino_resnet50", "swav_resnet50")
PHOTO_BACKBONE = "efficientnet_lite0"
# The bundled backbone sees 32x32 images; at this shorter side or below, images are of its kind.
TINY_IMAGE_SIDE = 64


@dataclass(frozen=True)
class BackboneChoice:
    """A project's backbone and why it is the one: ``source`` is ``default`` (chosen by banana),
    ``set`` (by ``set_by``), ``environment`` (``BANANA_BACKBONE``) or ``provisional`` (no images
    yet, nothing recorded)."""

    name: str
    reason: str
    source: str
    set_by: str | None = None


def default_backbone(
    shorter_sides: list[int], *, available: Callable[[str], bool] = weights_available
) -> BackboneChoice:
    """The backbone a project with images of these shorter sides (pixels) gets by default."""
    side = statistics.median(shorter_sides) if shorter_sides else None
    for name in SSL_PREFERENCE:
        if available(name):
            return BackboneChoice(name, f"{name} is a self-supervised backbone fetched on this machine", "default")
    if side is not None and side > TINY_IMAGE_SIDE:
        if available(PHOTO_BACKBONE):
            return BackboneChoice(
                PHOTO_BACKBONE,
                f"the images are photos (median shorter side {side:.0f} px) and no "
                "self-supervised backbone is fetched; this ImageNet backbone ships with pip",
                "default",
            )
        return BackboneChoice(
            "bundled",
            f"no photo backbone is installed here; features of photos will be weak. "
            f"Fetch one: {FETCH_COMMAND} {SSL_PREFERENCE[0]}",
            "default",
        )
    size = f"median shorter side {side:.0f} px" if side is not None else "no images yet"
    return BackboneChoice(
        "bundled",
        f"the images are tiny ({size}), like the 32x32 images the bundled backbone was trained on",
        "default" if side is not None else "provisional",
    )


def project_backbone(
    db: Database, settings: Settings, project_name: str, *, available: Callable[[str], bool] = weights_available
) -> BackboneChoice:
    """The project's backbone: ``BANANA_BACKBONE`` when set, else the recorded one, else the default,
    recorded now if the project has images."""
    if settings.backbone:
        return BackboneChoice(settings.backbone, "the BANANA_BACKBONE setting overrides the project's", "environment")
    with db.reading() as session:
        project = _project(session, project_name)
        recorded = setting_queries.project_setting(session, project.id, BACKBONE_SETTING)
        if recorded is not None:
            return _from_row(recorded)
        sides = item_queries.image_shorter_sides(session, project.id)
    choice = default_backbone(sides, available=available)
    if choice.source == "provisional":
        return choice
    with db.writing() as session:
        project = queries.lock_project(session, _project(session, project_name).id)
        recorded = setting_queries.project_setting(session, project.id, BACKBONE_SETTING)
        if recorded is not None:  # another server recorded its choice first: everyone uses that one
            return _from_row(recorded)
        setting_queries.set_project_setting(
            session, project.id, BACKBONE_SETTING, dict(name=choice.name, reason=choice.reason), by=None
        )
    return choice


def set_project_backbone(db: Database, project_name: str, name: str, *, by: str) -> bool:
    """Make ``name`` the project's backbone; returns whether it changed. Running engines notice
    and re-embed in the background (:func:`services.engine.lifecycle.grow_pool`); every label is kept.

    Raises
    ------
    UserError
        Unknown project, unknown backbone, or weights not on this machine (the message says
        how to fetch them).
    """
    name = name.strip()
    try:
        identify_backbone(name)
    except BackboneError as error:
        raise UserError(str(error)) from None
    with db.writing() as session:
        project = queries.lock_project(session, _project(session, project_name).id)
        recorded = setting_queries.project_setting(session, project.id, BACKBONE_SETTING)
        if recorded is not None and recorded.value.get("name") == name:
            return False
        setting_queries.set_project_setting(
            session, project.id, BACKBONE_SETTING, dict(name=name, reason=f"set by {by}"), by=by
        )
    return True


def backbone_training(name: str) -> str:
    """How a backbone's weights were trained, for the user (``self-supervised …``, ``supervised …``)."""
    if name == "bundled":
        return "self-supervised (SimCLR) on 32x32 CIFAR-10 images"
    spec = published_spec(name)
    return spec.training if spec is not None else "your own weights"


def _project(session, project_name: str):
    project = queries.find_project(session, project_name)
    if project is None:
        raise UserError(f"no project called {project_name!r}")
    return project


def _from_row(row) -> BackboneChoice:
    source = "set" if row.updated_by else "default"
    return BackboneChoice(row.value["name"], row.value.get("reason", ""), source, row.updated_by)


def available_backbones(*, available: Callable[[str], bool] = weights_available) -> list[str]:
    """Named backbones whose weights are on this machine, for a picker."""
    return [name for name in ("bundled", PHOTO_BACKBONE, *SSL_PREFERENCE, "resnet50") if available(name)]
