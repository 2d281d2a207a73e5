"""Find candidate files under a project root, without ever leaving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.ingest.rejection import Rejection


@dataclass(frozen=True)
class FoundFile:
    """A file to consider for ingest.

    Parameters
    ----------
    path : str
        POSIX path relative to the project root; the item's key.
    read_path : str
        Real location to read (a symlink's target inside the root).
    size_bytes, mtime_ns : int
        From ``stat``; a re-run skips files whose path, size and mtime are known.
    rejection : Rejection or None
        Set when the scan itself already rules the file out.
    """

    path: str
    read_path: str
    size_bytes: int
    mtime_ns: int
    rejection: Rejection | None = None


def scan_folder(folder: Path, *, root: Path) -> Iterator[FoundFile]:
    """Yield every file under ``folder`` (recursively, sorted by name).

    Names starting with ``.`` are skipped (``.DS_Store``, ``.git``). Symbolic
    links to folders are not followed; links to files are read only when
    their target lies inside ``root``, otherwise they are rejected.

    Parameters
    ----------
    folder : Path
        Folder to scan; its real path must lie inside ``root``.
    root : Path
        Resolved project root.
    """
    real_folder = Path(os.path.realpath(folder))
    if not real_folder.is_relative_to(root):
        raise ValueError(f"folder {folder} is outside the project root {root}")
    yield from _walk(real_folder, root)


def scan_list_file(list_file: Path, *, root: Path) -> Iterator[FoundFile]:
    """Yield the files named in a text file, one path per line.

    Relative paths are relative to the list file's folder; blank lines and
    lines starting with ``#`` are ignored; a listed folder is scanned like
    :func:`scan_folder`.
    """
    base = Path(list_file).parent
    with open(list_file, encoding="utf-8") as lines:
        for line in lines:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            path = Path(os.path.abspath(base / entry))
            if not path.is_relative_to(root):
                yield _rejected(
                    entry,
                    str(path),
                    Rejection(
                        f"listed path is outside the project root {root}",
                        "list only files under the root, or pass --root with a folder that holds them",
                    ),
                )
            elif path.is_dir() and Path(os.path.realpath(path)).is_relative_to(root):
                yield from _walk(Path(os.path.realpath(path)), root)
            else:
                yield _file(path, root)


def _walk(folder: Path, root: Path) -> Iterator[FoundFile]:
    """Scan ``folder`` with plain strings: pathlib per file would double the re-run time."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        yield _rejected(
            _relative(folder, root),
            str(folder),
            Rejection(
                f"cannot list this folder ({error.strerror})",
                "make the folder readable (chmod +rx) and run ingest again",
            ),
        )
        return
    prefix = "" if folder == root else _relative(folder, root) + "/"
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), root)
        elif entry.is_file(follow_symlinks=False):
            # The walk never passes through a link, so a plain file here is inside the root.
            try:
                yield _checked_name(prefix + entry.name, entry.path, entry.stat(follow_symlinks=False))
            except OSError:  # vanished or unreadable since the listing; _file says which
                yield _file(Path(entry.path), root)
        elif entry.is_symlink() and _is_folder_inside(Path(entry.path), root):
            continue  # its files are reached through their real path
        else:
            yield _file(Path(entry.path), root)


def _file(path: Path, root: Path) -> FoundFile:
    """Describe a path that may be a link, a missing file or something not a file."""
    relative = _relative(path, root)
    try:
        link_stat = path.lstat()
    except OSError as error:
        return _rejected(
            relative,
            str(path),
            Rejection(f"cannot read file ({error.strerror})", "check that the path exists and is readable"),
        )
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(root):
        return _rejected(
            relative,
            str(path),
            Rejection(
                f"symbolic link points outside the project root (to {target})",
                "copy the file into the root instead of linking to it",
            ),
            link_stat,
        )
    try:
        target_stat = target.stat()
    except OSError as error:
        return _rejected(
            relative,
            str(path),
            Rejection(f"link target cannot be read ({error.strerror})", "repair or remove the link"),
            link_stat,
        )
    if not target.is_file():
        return _rejected(
            relative,
            str(path),
            Rejection("not a regular file", "remove it; only image files can be ingested"),
            link_stat,
        )
    return _checked_name(relative, str(target), target_stat)


def _checked_name(relative: str, read_path: str, stat: os.stat_result) -> FoundFile:
    if not _is_utf8(relative):
        return _rejected(
            relative, read_path, Rejection("file name is not valid UTF-8", "rename the file to a UTF-8 name"), stat
        )
    return FoundFile(path=relative, read_path=read_path, size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _rejected(relative: str, path: str, rejection: Rejection, stat: os.stat_result | None = None) -> FoundFile:
    size, mtime = (stat.st_size, stat.st_mtime_ns) if stat else (0, 0)
    return FoundFile(path=_storable(relative), read_path=path, size_bytes=size, mtime_ns=mtime, rejection=rejection)


def _is_folder_inside(path: Path, root: Path) -> bool:
    target = Path(os.path.realpath(path))
    return target.is_dir() and target.is_relative_to(root)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(text: str) -> str:
    """Spell undecodable bytes of a file name as escapes, so the error row can be stored."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
