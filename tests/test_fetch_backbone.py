"""fetch-backbone against a real HTTP server on 127.0.0.1 serving a checkpoint the test generates."""

import hashlib
import io
import re
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import timm
import torch

from app.cli import main
from core.features import backbones
from core.features.backbones import PUBLISHED, Published, build_backbone, weights_available
from services.errors import UserError
from services.features.backbone_download import DownloadStopped, fetch_backbone, with_mirror

NAME = "tiny_test"
PUBLISHED_URL = "https://dl.example.org/tiny/tiny_pretrain.pth"
SERVED_PATH = "/tiny/tiny_pretrain.pth"


class CheckpointServer:
    """Serves ``body`` at SERVED_PATH with Range support, and can misbehave the ways real servers do.

    Attributes
    ----------
    requests : list of (path, Range header or None)
    cut_after : int or None
        The next response sends only this many body bytes, then closes the connection.
    ignore_range : bool
        Answer a Range request with the whole file (200).
    status : int
        Answer every request with this HTTP status when it is not 200.
    """

    def __init__(self, body):
        self.body = body
        self.requests = []
        self.cut_after = None
        self.ignore_range = False
        self.status = 200
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server.owner
        asked = self.headers.get("Range")
        server.requests.append((self.path, asked))
        if server.status != 200 or self.path != SERVED_PATH:
            self.send_error(server.status if server.status != 200 else 404)
            return
        body, start = server.body, 0
        if asked and not server.ignore_range:
            start = int(asked.removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if server.cut_after is not None:
            payload, server.cut_after = payload[: server.cut_after], None
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def checkpoint():
    """A real state dict of a tiny timm ResNet, as torch.save writes it (about 1.5 MB)."""
    buffer = io.BytesIO()
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture
def server(checkpoint):
    serving = CheckpointServer(checkpoint)
    serving.thread.start()
    yield serving
    serving.httpd.shutdown()
    serving.httpd.server_close()


@pytest.fixture
def published(monkeypatch, checkpoint):
    """A published backbone whose original file is the generated checkpoint, hash pinned."""
    spec = Published(
        "test_resnet",
        "test_resnet.r160_in1k",
        "self-supervised (test)",
        url=PUBLISHED_URL,
        sha256=hashlib.sha256(checkpoint).hexdigest(),
        size_mb=2,
    )
    monkeypatch.setitem(PUBLISHED, NAME, spec)
    return spec


@pytest.fixture
def checkpoints(home, tmp_path):
    """The torch hub checkpoints folder the CLI uses ($TORCH_HOME/hub/checkpoints, empty)."""
    return tmp_path / "torch" / "hub" / "checkpoints"


def fetch(capsys, *argv):
    code = main(["fetch-backbone", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_download_is_verified_placed_and_then_found(server, published, checkpoints, checkpoint, tmp_path, capsys):
    assert not weights_available(NAME, hf_cache=tmp_path / "hf")
    code, out, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 0 and f"SHA-256 verified ({published.sha256})" in out, err
    assert f"backbone --set {NAME}" in out
    assert server.requests == [(SERVED_PATH, None)]
    assert f"fetching {NAME} from {server.url}tiny/tiny_pretrain.pth" in err and "(100%)" in err and "MB/s" in err
    assert (checkpoints / "tiny_pretrain.pth").read_bytes() == checkpoint
    assert not (checkpoints / "tiny_pretrain.pth.partial").exists()
    assert weights_available(NAME, hf_cache=tmp_path / "hf")
    backbone = build_backbone(NAME, hf_cache=tmp_path / "hf")
    assert backbone.identity.weights_path == checkpoints / "tiny_pretrain.pth" and backbone.embed_dim == 96


@pytest.mark.slow
def test_interrupted_download_resumes_with_a_range_request(server, published, checkpoints, checkpoint, capsys):
    cut = 200_000
    server.cut_after = cut
    code, _, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 1 and "broke off (the server closed the connection) after 0.2 of 1." in err
    assert f"run `python -m app.cli fetch-backbone {NAME}` again to resume" in err
    assert (checkpoints / "tiny_pretrain.pth.partial").read_bytes() == checkpoint[:cut]
    assert not (checkpoints / "tiny_pretrain.pth").exists()

    code, out, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 0 and "resumed at 0.2 MB" in out and "SHA-256 verified" in out, err
    assert server.requests[-1] == (SERVED_PATH, f"bytes={cut}-")
    assert (checkpoints / "tiny_pretrain.pth").read_bytes() == checkpoint


@pytest.mark.slow
def test_a_server_that_ignores_range_restarts_from_zero(server, published, checkpoint, tmp_path):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "tiny_pretrain.pth.partial").write_bytes(checkpoint[:100_000])
    server.ignore_range = True
    report = fetch_backbone(NAME, hub_dir=hub, mirror=server.url)
    assert server.requests == [(SERVED_PATH, "bytes=100000-")]
    assert report.verified and report.resumed_from == 0 and report.downloaded_bytes == len(checkpoint)
    assert (hub / "checkpoints" / "tiny_pretrain.pth").read_bytes() == checkpoint


@pytest.mark.slow
def test_a_partial_file_that_is_already_whole_is_verified_without_download(server, published, checkpoint, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "tiny_pretrain.pth.partial").write_bytes(checkpoint)
    report = fetch_backbone(NAME, hub_dir=tmp_path, mirror=server.url)
    assert server.requests == [(SERVED_PATH, f"bytes={len(checkpoint)}-")]  # answered 416: nothing left
    assert report.verified and report.downloaded_bytes == 0
    assert (tmp_path / "checkpoints" / "tiny_pretrain.pth").read_bytes() == checkpoint


@pytest.mark.slow
def test_checksum_mismatch_deletes_the_file_and_says_so(
    server, published, checkpoints, checkpoint, monkeypatch, capsys
):
    expected = hashlib.sha256(b"the published bytes").hexdigest()
    monkeypatch.setitem(PUBLISHED, NAME, replace(published, sha256=expected))
    code, _, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 1 and f"checksum mismatch for {NAME}" in err and "The downloaded file was deleted" in err
    assert f"SHA-256 {hashlib.sha256(checkpoint).hexdigest()}, expected {expected}" in err
    assert list(checkpoints.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("status, kept", [(500, True), (503, True), (404, False)])
def test_http_errors_name_the_url_and_keep_a_partial_only_where_it_can_resume(
    server, published, checkpoints, checkpoint, capsys, status, kept
):
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny_pretrain.pth.partial").write_bytes(checkpoint[:1000])
    server.status = status
    code, _, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 1 and f"{server.url}tiny/tiny_pretrain.pth (the mirror from --mirror" in err
    assert f"answered HTTP {status}" in err and f"download {PUBLISHED_URL} on a machine with internet" in err
    assert (checkpoints / "tiny_pretrain.pth.partial").exists() == kept
    assert ("run `python -m app.cli fetch-backbone tiny_test` again later" in err) == kept
    assert not (checkpoints / "tiny_pretrain.pth").exists()


def test_no_network_says_what_to_do(checkpoints, capsys):
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = fetch(capsys, "dinov2_vits14", "--mirror", f"http://127.0.0.1:{port}/")
    assert code == 1 and f"cannot reach 127.0.0.1:{port}" in err and "connection refused" in err
    assert "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth on a machine" in err
    assert f"place it at {checkpoints / 'dinov2_vits14_pretrain.pth'}" in err


@pytest.mark.slow
def test_a_present_verified_file_is_not_downloaded_again(server, published, checkpoints, capsys):
    assert fetch(capsys, NAME, "--mirror", server.url)[0] == 0
    code, out, _ = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 0 and "already downloaded, verified" in out and "Nothing to do" in out
    assert len(server.requests) == 1


@pytest.mark.slow
def test_a_present_file_with_other_bytes_is_reported_not_replaced(server, published, checkpoints, capsys):
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny_pretrain.pth").write_bytes(b"not the checkpoint")
    code, _, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 1 and "exists but is not the published tiny_test checkpoint" in err and "rm '" in err
    assert (checkpoints / "tiny_pretrain.pth").read_bytes() == b"not the checkpoint" and server.requests == []


@pytest.mark.slow
def test_without_a_pinned_hash_it_downloads_only_when_told_unverified(
    server, published, checkpoints, checkpoint, monkeypatch, capsys
):
    monkeypatch.setitem(PUBLISHED, NAME, replace(published, sha256=None))
    code, _, err = fetch(capsys, NAME, "--mirror", server.url)
    assert code == 1 and "no published SHA-256 is pinned for tiny_test" in err and "--unverified" in err
    assert server.requests == []
    code, out, _ = fetch(capsys, NAME, "--mirror", server.url, "--unverified")
    assert code == 0 and "NOT verified" in out and hashlib.sha256(checkpoint).hexdigest() in out
    assert (checkpoints / "tiny_pretrain.pth").read_bytes() == checkpoint


@pytest.mark.slow
def test_ctrl_c_keeps_the_bytes_for_the_next_run(server, published, checkpoint, tmp_path):
    def stop_after_first_chunk(*, url, path, done, total):
        if done:
            raise KeyboardInterrupt

    with pytest.raises(DownloadStopped, match="stopped after 0.1 of 1.5 MB"):
        fetch_backbone(
            NAME, hub_dir=tmp_path, mirror=server.url, on_progress=stop_after_first_chunk, chunk_bytes=100_000
        )
    assert (tmp_path / "checkpoints" / "tiny_pretrain.pth.partial").read_bytes() == checkpoint[:100_000]
    report = fetch_backbone(NAME, hub_dir=tmp_path, mirror=server.url)
    assert report.verified and report.resumed_from == 100_000


def test_names_with_nothing_to_download_say_so(home, capsys):
    code, out, _ = fetch(capsys, "bundled")
    assert code == 0 and "bundled: nothing to download; it ships with banana" in out
    code, out, _ = fetch(capsys, "efficientnet_lite0")
    assert code == 0 and "nothing to download; its weights ship inside an installed pip package" in out
    code, _, err = fetch(capsys, "local:/data/mine.safetensors")
    assert code == 1 and "names its own weights file: there is nothing to download" in err
    code, _, err = fetch(capsys, "dinov3_vits16")
    assert code == 1 and "unknown backbone 'dinov3_vits16'" in err and "dinov2_vits14 (about 85 MB)" in err


def test_every_pin_is_a_sha256_and_agrees_with_a_hash_in_the_file_name():
    """torchvision's file names carry the first 8 hex digits of their sha256: a typo in a pin shows."""
    for name, spec in PUBLISHED.items():
        if spec.sha256 is None:
            continue
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), name
        in_name = re.search(r"-([0-9a-f]{8})\.pth$", spec.file_name)
        if in_name:
            assert spec.sha256.startswith(in_name.group(1)), name
    assert PUBLISHED["resnet50"].file_name == "resnet50-11ad3fa6.pth"


def test_a_mirror_replaces_scheme_and_host_and_keeps_the_path():
    url = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
    assert with_mirror(url, None) == url
    assert (
        with_mirror(url, "http://10.0.0.5:8080/models/")
        == "http://10.0.0.5:8080/models/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
    )
    with pytest.raises(UserError, match="is not an http"):
        with_mirror(url, "10.0.0.5:8080")


@pytest.mark.slow
def test_the_mirror_variable_is_the_default(server, published, checkpoints, monkeypatch, capsys):
    monkeypatch.setenv("BANANA_BACKBONE_MIRROR", server.url)
    code, out, err = fetch(capsys, NAME)
    assert code == 0 and server.requests == [(SERVED_PATH, None)], err


def test_only_the_fetch_service_opens_urls():
    """Nothing else in the product downloads: no other module of app/, core/, services/, storage/ opens a URL."""
    from pathlib import Path

    root = Path(backbones.__file__).resolve().parents[2]
    pattern = re.compile(
        r"urlopen|urlretrieve|import requests|hf_hub_download|snapshot_download|"
        r"download_url_to_file|load_state_dict_from_url|pretrained=True|torch\.hub\.load\("
    )
    openers = {
        path.relative_to(root).as_posix()
        for folder in ("app", "core", "services", "storage")
        for path in (root / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    }
    assert openers == {"services/features/backbone_download.py"}
