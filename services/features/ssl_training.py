"""Self-supervised pretraining of a backbone on a project's own images."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from safetensors import SafetensorError

from core.evaluation.knn import KNNMonitor
from core.features.backbone_file import Preprocessing, load_backbone, save_backbone
from core.features.weights import file_sha256
from core.ssl.simclr import SimCLRConfig, SimCLRTrainer
from core.transfer.class_folder import decode_many, read_class_folder
from services.config import Settings
from services.database import Database
from services.errors import UserError
from storage import queries
from storage.items import item_queries


@dataclass(frozen=True)
class TrainedBackbone:
    path: Path
    n_images: int
    steps: int
    knn_accuracy: float | None


def ok_item_paths(db: Database, project_name: str) -> list[Path]:
    """Absolute paths of a project's ingested images, in item-id order."""
    with db.reading() as session:
        project = queries.find_project(session, project_name)
        if project is None:
            raise UserError(f"project {project_name!r} does not exist; run `python -m app.cli ingest FOLDER` first")
        root = Path(project.root_path)
        return [root / path for _, path in item_queries.ok_item_paths(session, project.id)]


def train_backbone(
    db: Database,
    settings: Settings,
    *,
    project: str,
    config: SimCLRConfig,
    device: str = "cpu",
    out: Path | None = None,
    state: Path | None = None,
    knn_folder: Path | None = None,
    knn_every: int = 10,
    init: Path | None = None,
    callbacks=(),
    log=print,
) -> TrainedBackbone:
    """Train a backbone with SimCLR on a project's images and write it as ``local:PATH``.

    Training state goes to ``state`` every ``config.checkpoint_every`` steps; calling
    again with the same options resumes from it. ``knn_folder`` (``<class>/<image>``)
    is read only to report kNN accuracy while training. ``init``, a backbone file
    (e.g. the bundled one), is where training starts instead of random weights; its
    shape and input size replace the config's.
    """
    init_backbone, continued_from = None, None
    if init is not None:
        try:
            model, prep, _ = load_backbone(init)
        except (OSError, ValueError, KeyError, SafetensorError) as error:
            raise UserError(
                f"--init {init} is not a backbone file this version can read ({error}); give a file "
                "written by `ssl-train` or the bundled sample_data/backbone/backbone.safetensors"
            ) from None
        init_backbone = model.state_dict()
        config = replace(config, widths=model.widths, blocks=model.blocks, image_size=prep.image_size)
        continued_from = dict(file=Path(init).name, weights_sha256=file_sha256(init))
    paths = ok_item_paths(db, project)
    if len(paths) < 2:
        raise UserError(
            f"project {project!r} has {len(paths)} ingested images; self-supervised training needs 2 or more"
        )
    models = settings.home / "models"
    models.mkdir(parents=True, exist_ok=True)
    out = Path(out or models / f"ssl-{project}.safetensors")
    state = Path(state or models / f"ssl-{project}.state.pt")
    workers = min(8, os.cpu_count() or 1)
    log(f"decoding {len(paths)} images at {config.image_size}x{config.image_size}")
    images = decode_many(paths, size=config.image_size, workers=workers)
    callbacks = list(callbacks)
    monitor = None
    if knn_folder is not None:
        try:
            held, labels, _, _ = read_class_folder(knn_folder, size=config.image_size, workers=workers)
        except (FileNotFoundError, ValueError) as error:
            raise UserError(str(error)) from None
        if len(held) < 2:
            raise UserError(f"--knn-folder {knn_folder} holds {len(held)} image; kNN needs 2 or more")
        # Even-numbered images are the bank, odd-numbered ones the queries.
        monitor = KNNMonitor(
            bank_images=held[::2],
            bank_labels=labels[::2],
            query_images=held[1::2],
            query_labels=labels[1::2],
            every=knn_every,
            log=log,
        )
        callbacks.append(monitor)
    trainer = SimCLRTrainer(config=config, device=device, callbacks=callbacks, init_backbone=init_backbone)
    trainer.fit(images, checkpoint_path=str(state))
    knn = monitor.evaluate(trainer) if monitor else None
    preprocessing = Preprocessing(image_size=config.image_size, mean=tuple(trainer.mean_), std=tuple(trainer.std_))
    info = dict(method="SimCLR", project=project, n_images=len(images), steps=trainer.step_, knn_accuracy=knn)
    if continued_from:
        info["continued_from"] = continued_from
    save_backbone(out, trainer.backbone_, preprocessing=preprocessing, info=info)
    return TrainedBackbone(path=out, n_images=len(images), steps=trainer.step_, knn_accuracy=knn)
