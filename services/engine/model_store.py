"""Probe versions on disk (plain ``.npz`` arrays, never pickles) and as ModelVersion rows."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from core.model.probe import LinearProbe
from services.config import Settings
from services.database import Database
from services.disk_full import file_system_of, is_disk_full
from services.errors import UserError
from storage.labels import label_queries

log = logging.getLogger(__name__)


def save_model_version(
    db: Database,
    settings: Settings,
    *,
    project_id: int,
    backbone_key: str,
    probe: LinearProbe,
    n_labels: int,
    metrics: dict[str, Any],
) -> int:
    """Write the probe's arrays under ``BANANA_HOME/models/`` and record the version; return its id.

    The file is complete on disk before the row names it. A failed write (a full disk) leaves no
    partial file; a full disk is a UserError naming the file system to free space on.
    """
    relative = Path("models") / f"project-{project_id}" / backbone_key / f"{uuid.uuid4().hex}.npz"
    path = settings.home / relative
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            np.savez(handle, **probe.to_arrays())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)  # each retrain saves under a new name: left files would pile up
        if is_disk_full(error):
            raise UserError(
                f"could not save the model to {path.parent}: the disk is full ({error}); free "
                f"space on {file_system_of(path)}. The labels are kept, and the previous model serves until a "
                "later retrain saves its model"
            ) from None
        raise
    with db.writing() as session:
        return label_queries.add_model_version(
            session,
            project_id=project_id,
            n_labels=n_labels,
            metrics=dict(_json_safe(metrics), backbone=backbone_key),
            artifact_path=relative.as_posix(),
        )


def load_latest_model(
    db: Database, settings: Settings, *, project_id: int, backbone_key: str
) -> tuple[int, LinearProbe, dict[str, Any]] | None:
    """The newest stored probe of the project for this backbone: (version id, probe, metrics), or None.

    None too when the version's file is missing (a database restored into a new home, models/
    deleted): the caller then trains a new model from the labels, which the database holds.
    """
    with db.reading() as session:
        version = label_queries.latest_model_version(session, project_id, backbone_key)
        if version is None:
            return None
        version_id, artifact, metrics = version.id, version.artifact_path, dict(version.metrics)
    try:
        with np.load(settings.home / artifact, allow_pickle=False) as arrays:
            probe = LinearProbe.from_arrays(arrays)
    except FileNotFoundError:
        log.warning(
            "model version %d of project %d: its file %s is missing (a database restored into another "
            "home?); a new model is trained from the labels",
            version_id,
            project_id,
            settings.home / artifact,
        )
        return None
    return version_id, probe, metrics


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """Plain floats and ints for the JSON column (numpy scalars do not serialise)."""
    return {name: value.item() if isinstance(value, np.generic) else value for name, value in metrics.items()}
