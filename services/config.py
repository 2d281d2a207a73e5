"""Settings for every front end: environment over an optional TOML file over defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image

from services.errors import UserError


def _pillow_pixel_limit() -> int:
    """Pillow's own decompression-bomb guard stays on; our pixel limit may only tighten it."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        raise RuntimeError("Pillow's decompression-bomb guard is off (PIL.Image.MAX_IMAGE_PIXELS is None)")
    return limit


PILLOW_PIXEL_LIMIT = _pillow_pixel_limit()


@dataclass(frozen=True)
class Settings:
    """Where banana keeps its data and how it treats input.

    Parameters
    ----------
    home : Path
        Workspace directory for the database, embeddings, indexes and models.
    database_url : str or None
        Any SQLAlchemy URL. ``None`` means ``sqlite:///<home>/banana.db``.
    backbone : str or None
        Feature backbone for every project (``BANANA_BACKBONE``); None, the default, uses each
        project's own (``services.features.project_backbone``).
    project : str
        Project used when a command or page is not told one.
    max_image_bytes : int
        Files larger than this are rejected at ingest.
    max_image_pixels : int
        Images with more pixels are rejected; at most Pillow's own limit.
    ingest_batch_size : int
        Files written per short transaction during ingest.
    ingest_workers : int
        Processes that read and decode files during ingest; 0 means one per CPU core.
    """

    home: Path = Path(".banana")
    database_url: str | None = None
    backbone: str | None = None
    project: str = "default"
    max_image_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = PILLOW_PIXEL_LIMIT
    ingest_batch_size: int = 500
    ingest_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().absolute())
        if self.database_url is None:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'banana.db'}")
        for name in ("max_image_bytes", "max_image_pixels", "ingest_batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"setting {name} must be a positive integer, got {getattr(self, name)}")
        if self.ingest_workers < 0:
            raise UserError(f"setting ingest_workers must be 0 (one per CPU core) or more, got {self.ingest_workers}")
        if self.max_image_pixels > PILLOW_PIXEL_LIMIT:
            raise UserError(
                f"setting max_image_pixels={self.max_image_pixels} is above Pillow's "
                f"decompression-bomb limit of {PILLOW_PIXEL_LIMIT}; set it to that or lower"
            )

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, which is never None once the settings exist (None asks for the default)."""
        if self.database_url is None:
            raise RuntimeError("Settings.database_url is None; Settings.__post_init__ should have set the default")
        return self.database_url


ENVIRONMENT_PREFIX = "BANANA_"
CONFIG_PATH_VARIABLE = "BANANA_CONFIG"
DEFAULT_CONFIG_FILE = Path("banana.toml")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings: ``BANANA_*`` variables over a TOML file over defaults.

    The TOML file is ``$BANANA_CONFIG`` when set, else ``./banana.toml`` when it
    exists. Its top-level keys are the field names of :class:`Settings`, the
    variables are the same names upper-cased with a ``BANANA_`` prefix.

    Parameters
    ----------
    environ : mapping, optional
        Environment to read; defaults to ``os.environ``.

    Returns
    -------
    Settings

    Raises
    ------
    UserError
        When the file is missing or malformed, or a value has the wrong type.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    config_path = environ.get(CONFIG_PATH_VARIABLE)
    if config_path:
        values.update(_read_toml(Path(config_path)))
    elif DEFAULT_CONFIG_FILE.is_file():
        values.update(_read_toml(DEFAULT_CONFIG_FILE))
    for field in fields(Settings):
        variable = ENVIRONMENT_PREFIX + field.name.upper()
        if environ.get(variable):
            values[field.name] = environ[variable]
    # Each value has its field's type: _convert checks it by the field's name.
    converted: dict[str, Any] = {name: _convert(name, value) for name, value in values.items()}
    return Settings(**converted)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; fix {CONFIG_PATH_VARIABLE} or create the file") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"config file {path} is not valid TOML: {error}") from None
    known = {field.name for field in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(
            f"config file {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return data


_FIELD_TYPES = {field.name: field.type for field in fields(Settings)}


def _convert(name: str, value: object) -> int | Path | str:
    """Coerce a TOML or environment value to the field's type, naming the field on failure."""
    if _FIELD_TYPES[name] == "int":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise UserError(f"setting {name} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise UserError(f"setting {name} must be an integer, got {value!r}") from None
    if _FIELD_TYPES[name] == "Path":
        return Path(str(value))
    if not isinstance(value, str):
        raise UserError(f"setting {name} must be a string, got {value!r}")
    return value
