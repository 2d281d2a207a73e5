"""ImageFolder-style trees (``root/<class>/<image>``): safe folder and file names for writing
one, and reading one into memory.

Class folder names are ground truth for evaluation and simulated annotators only;
selection logic never calls this.

Names are written percent-encoded (as in URLs: ``%`` and the UTF-8 bytes of a character in hex),
so that ``urllib.parse.unquote`` gives the class name or image path back. Encoded are ``%``, ``/``,
``\\``, the characters Windows refuses (``<>:"|?*``), control, formatting and separator
characters other than the space, a leading space or dot, a trailing space or dot, and the first
letter of a name Windows reserves (``con``, ``nul``, ``com1``, ...). Two names that only upper and
lower case or Unicode form tell apart (``Cat`` and ``cat``, which case-insensitive file systems
would make one folder) have every character but lower-case ASCII letters, digits and ``-_. ``
encoded. A name whose encoding would pass :data:`NAME_BYTES` bytes is cut, and ends with ``~`` and
16 hex digits of its SHA-256 (before the file's extension); :data:`CLASS_NAMES_FILE` at the root
maps each class folder to its class name exactly.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from core.images.decode import DRAFT_MARGIN, open_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CLASS_NAMES_FILE = ".classes.json"  # {folder: class name}; a leading dot is never a folder's
NAME_BYTES = 200  # under the 255 bytes a file name may have on common file systems
_UNSAFE = frozenset('%/\\<>:"|?*')
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_. ")
_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10))})


def decode_square(path, size):
    """Decode an image as :func:`core.images.decode.open_rgb` does (a JPEG reduced while both sides
    stay at least twice ``size``), resize its shorter side to ``size`` and centre-crop a square."""
    image = open_rgb(path, min_side=DRAFT_MARGIN * size)
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_many(paths, *, size, workers=1):
    """Decode many images in parallel; returns (N, size, size, 3) uint8."""
    decode = partial(decode_square, size=size)
    if workers <= 1:
        return np.stack([decode(p) for p in paths]) if paths else np.zeros((0, size, size, 3), np.uint8)
    with ProcessPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(decode, paths, chunksize=256)))


def safe_names(texts: Iterable[str], *, keep_suffix: bool = False) -> dict[str, str]:
    """A file or folder name for each of ``texts``: safe on common file systems, unique even
    where case or Unicode form does not count, and reversible (see the module's docstring).

    Parameters
    ----------
    texts : iterable of str
        Class names, or image paths (``/`` is encoded, so a path becomes one name).
    keep_suffix : bool
        Keep the extension at the end of a name that is cut (image files).

    Returns
    -------
    dict of str to str
        Each text's name.
    """
    # Level 0: readable; 1: for names that clash, ASCII with lower-case letters only; 2: with a hash.
    level = dict.fromkeys(texts, 0)
    while True:
        names = {text: _safe_name(text, level[text], keep_suffix) for text in level}
        clashes = defaultdict(list)
        for text, name in names.items():
            clashes[unicodedata.normalize("NFC", name).casefold()].append(text)
        clashing = [text for group in clashes.values() if len(group) > 1 for text in group]
        if not clashing:
            return names
        for text in clashing:
            level[text] += 1


def _safe_name(text: str, level: int, keep_suffix: bool) -> str:
    plain = _PLAIN.__contains__ if level else _readable
    parts = [char if plain(char) else _escaped(char) for char in text]
    for end in (0, -1):
        if parts and parts[end] in (" ", "."):
            parts[end] = _escaped(parts[end])
    if "".join(parts).split(".")[0].lower() in _RESERVED:
        parts[0] = _escaped(parts[0])
    name = "".join(parts)
    if name and level < 2 and len(name.encode()) <= NAME_BYTES:
        return name
    suffix = PurePosixPath(text).suffix if keep_suffix else ""
    tail = "".join(parts[len(parts) - len(suffix) :]) if suffix else ""
    mark = "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    head, room = "", NAME_BYTES - len((mark + tail).encode())
    for part in parts[: len(parts) - len(suffix)]:
        if len((head + part).encode()) > room:
            break
        head += part
    return head + mark + tail


def _readable(char: str) -> bool:
    return char == " " or (char not in _UNSAFE and unicodedata.category(char)[0] not in "CZ")


def _escaped(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def list_class_folder(root):
    """Image files under ``root/<class>/`` with their class index.

    A class is named by its folder, or by :data:`CLASS_NAMES_FILE` where the folder holds one
    (banana's ImageFolder exports).

    Returns
    -------
    paths : list of Path, sorted by class then file name
    labels : ndarray of shape (N,), int — index into ``classes``
    classes : list of str, sorted
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"labeled folder {root} does not exist; pass a folder of <class>/<image> files")
    names = _class_names(root)
    folders = sorted((names.get(p.name, p.name), p.name) for p in root.iterdir() if p.is_dir())
    classes = [name for name, _ in folders]
    paths, labels = [], []
    for label, (_, folder) in enumerate(folders):
        for path in sorted((root / folder).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(f"labeled folder {root} holds no images in class subfolders (<class>/<image>)")
    return paths, np.array(labels), classes


def _class_names(root: Path) -> dict[str, str]:
    """Folder -> class name from ``root``'s :data:`CLASS_NAMES_FILE`; empty without one."""
    listing = root / CLASS_NAMES_FILE
    if not listing.is_file():
        return {}
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # RecursionError: nested too deep
        raise ValueError(
            f"{listing} is not a JSON object of folder names and class names ({error}); "
            "delete it to name the classes by their folders"
        ) from None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise ValueError(
            f"{listing} is not a JSON object of folder names and class names; "
            "delete it to name the classes by their folders"
        )
    return names


def read_class_folder(root, *, size, workers=1):
    """Every image under ``root/<class>/`` at ``size`` x ``size``.

    Returns
    -------
    images : ndarray of shape (N, size, size, 3), uint8
    labels, paths, classes : as :func:`list_class_folder` returns them
    """
    paths, labels, classes = list_class_folder(root)
    return decode_many(paths, size=size, workers=workers), labels, paths, classes
