"""Security properties: files outside the project root are never served, XSRF protection and the
upload limit are on, checkpoints load with ``weights_only=True``, probe artifacts are plain arrays."""

from __future__ import annotations

import ast
import io
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit import config

from core.features.weights import read_state_dict
from core.model.probe import LinearProbe
from core.ssl.simclr import SimCLRTrainer
from services.engine.model_store import load_latest_model, save_model_version
from services.errors import UserError
from services.features.item_images import ImageCache
from services.projects import ensure_project
from services.transfer.imports import import_file
from tests.e2e_app import running_app
from tests.images import write_image
from tests.test_simclr import TINY, blob_images

REPO = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {".venv", ".git", "test-artifacts", ".banana", ".gpu", "__pycache__", "node_modules"}


def repository_python_files() -> list[Path]:
    return [path for path in REPO.rglob("*.py") if not SKIPPED_FOLDERS & set(path.relative_to(REPO).parts)]


# --- nothing outside the project root is served ---------------------------------------------


@pytest.fixture
def root_and_outside(tmp_path: Path) -> tuple[Path, Path]:
    """A project root holding ``inside.png``, and a real image next to (not under) the root."""
    root, outside = tmp_path / "root", tmp_path / "secret.png"
    write_image(root / "inside.png", 1)
    write_image(outside, 2)
    return root, outside


def test_images_under_the_root_are_served(root_and_outside):
    root, _ = root_and_outside
    assert ImageCache(root).get(1, "inside.png", 64).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "stored_path", ["../secret.png", "../../../../../../etc/passwd", "/etc/passwd", "sub/../../secret.png"]
)
def test_an_item_path_that_leaves_the_root_is_refused(root_and_outside, stored_path):
    root, _ = root_and_outside
    with pytest.raises(UserError, match="outside the project root"):
        ImageCache(root).get(7, stored_path, 64)


def test_an_absolute_path_to_a_real_image_outside_is_refused(root_and_outside):
    root, outside = root_and_outside
    with pytest.raises(UserError, match="outside the project root"):
        ImageCache(root).get(7, str(outside), 64)


def test_a_link_swapped_after_ingest_to_point_outside_is_refused(root_and_outside):
    root, outside = root_and_outside
    (root / "cat.png").symlink_to(root / "inside.png")
    assert ImageCache(root).get(3, "cat.png", 64).startswith(b"\x89PNG")  # a link within the root is fine

    (root / "cat.png").unlink()
    (root / "cat.png").symlink_to(outside)
    with pytest.raises(UserError, match="'cat.png' resolves outside the project root"):
        ImageCache(root).get(4, "cat.png", 64)
    (root / "cat.png").unlink()
    (root / "sub").symlink_to(outside.parent, target_is_directory=True)  # a linked folder, too
    with pytest.raises(UserError, match="outside the project root"):
        ImageCache(root).get(5, "sub/secret.png", 64)


def test_pages_show_item_images_only_through_the_image_cache():
    """Every ``st.image`` call in the app is given the cache's bytes, never a path it built itself."""
    calls = []
    for path in (REPO / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "image"
                and ast.unparse(node.func) != "session.image"
            ):  # LabelingSession.image: the cache's bytes
                calls.append((path.name, ast.unparse(node.args[0]) if node.args else ""))
    assert calls
    for name, argument in calls:
        assert re.match(r"(engine\.pool\.images\.get|session\.image)\(", argument), f"{name}: st.image({argument})"


# --- XSRF protection and the upload limit ---------------------------------------------------


@pytest.fixture
def repository_config(monkeypatch):
    """Streamlit's effective options as `streamlit run` sees them from the repository root."""
    monkeypatch.chdir(REPO)
    config.get_config_options(force_reparse=True)
    yield config
    monkeypatch.undo()
    config.get_config_options(force_reparse=True)


def test_xsrf_protection_stays_on_and_uploads_are_limited(repository_config):
    assert repository_config.get_option("server.enableXsrfProtection") is True
    assert repository_config.get_option("server.enableCORS") is True  # the default, not weakened
    assert repository_config.get_option("server.maxUploadSize") == 50
    assert "enableXsrfProtection" not in (REPO / "Makefile").read_text()
    assert "enableCORS" not in (REPO / "Makefile").read_text()


@pytest.mark.slow
def test_the_running_app_refuses_an_upload_without_the_xsrf_token(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with running_app(home) as url:
        request = urllib.request.Request(
            f"{url}/_stcore/upload_file/some-session/some-file", data=b"path,labels\n", method="PUT"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


# --- checkpoints load with weights_only=True --------------------------------------------------


@pytest.mark.slow
def test_every_torch_load_in_the_repository_passes_weights_only_true():
    loads = []
    for path in repository_python_files():
        if path == Path(__file__):  # proves below that an unguarded load runs the payload
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in [alias.name for alias in node.names], f"{path}: call torch.load by that name"
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: k.value for k in node.keywords}
                loads.append(path.relative_to(REPO))
                assert (
                    isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True
                ), f"{path.relative_to(REPO)}:{node.lineno}: torch.load without weights_only=True"
    assert Path("core/features/weights.py") in loads and Path("core/ssl/simclr.py") in loads


@pytest.mark.slow
def test_nothing_in_the_repository_unpickles():
    for path in repository_python_files():
        source = path.read_text()
        tree = ast.parse(source, str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                assert called not in ("pickle.load", "pickle.loads", "joblib.load", "dill.load", "cloudpickle.load"), (
                    f"{path.relative_to(REPO)}:{node.lineno}: {called}"
                )
                for keyword in node.keywords:
                    assert not (keyword.arg == "allow_pickle" and ast.unparse(keyword.value) != "False"), (
                        f"{path.relative_to(REPO)}:{node.lineno}: allow_pickle={ast.unparse(keyword.value)}"
                    )


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_carrying_code_is_refused_before_the_code_runs(tmp_path):
    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload(marker)}, checkpoint)

    with pytest.raises(ValueError, match="cannot be read as weights"):
        read_state_dict(checkpoint)
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        SimCLRTrainer(config=TINY).fit(blob_images(), checkpoint_path=str(checkpoint))
    assert not marker.exists()
    torch.load(checkpoint, weights_only=False)  # the payload is real: unguarded loading runs it
    assert marker.exists()


# --- probe artifacts are arrays, never pickles --------------------------------------------------


def fitted_probe() -> LinearProbe:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (20, 4)), rng.normal(2, 1, (20, 4))])
    return LinearProbe().fit(X, np.array(["cat", "dog"]).repeat(20))


def test_a_stored_probe_is_plain_arrays_and_a_pickle_in_its_place_is_refused(db, settings, tmp_path):
    (tmp_path / "images").mkdir()
    project = ensure_project(db, name="default", root=None, root_if_new=tmp_path / "images")
    save_model_version(
        db, settings, project_id=project.id, backbone_key="bundled", probe=fitted_probe(), n_labels=40, metrics={}
    )
    artifact = next((settings.home / "models").rglob("*.npz"))

    with zipfile.ZipFile(artifact) as archive:
        for member in archive.namelist():
            array = np.lib.format.read_array(io.BytesIO(archive.read(member)), allow_pickle=False)
            assert member.endswith(".npy") and array.dtype != object
    assert load_latest_model(db, settings, project_id=project.id, backbone_key="bundled")[1] is not None

    marker = tmp_path / "code-ran"
    arrays = dict(np.load(artifact, allow_pickle=False))
    arrays["classes"] = np.array([Payload(marker), "dog"], dtype=object)  # an object array is stored pickled
    with open(artifact, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_latest_model(db, settings, project_id=project.id, backbone_key="bundled")
    assert not marker.exists()


# --- every page checks the account itself ------------------------------------------------------


def navigation_roles() -> dict[str, str]:
    """Page file -> the lowest role app/main.py's PAGES_BY_ROLE shows it to."""
    tree = ast.parse((REPO / "app" / "main.py").read_text())
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "PAGES_BY_ROLE"
    )
    roles = {}
    for entry in table.elts:
        page, role = entry.elts
        roles[page.args[0].right.value] = ast.unparse(role)  # PAGES / "name.py"
    return roles


def test_every_page_first_requires_the_role_the_navigation_gives_it():
    """Streamlit runs a file of app/pages/ by its URL without app/main.py until st.navigation has
    run once in the server process, so each page checks the signed-in account before anything else."""
    roles = navigation_roles()
    pages = sorted(path.name for path in (REPO / "app" / "pages").glob("*.py"))
    assert set(roles) == set(pages) - {"sign_in.py"}
    for name in roles:
        tree = ast.parse((REPO / "app" / "pages" / name).read_text())
        first = next(
            node
            for node in tree.body
            if not isinstance(node, (ast.Import, ast.ImportFrom))
            and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        )
        call = first.value if isinstance(first, (ast.Expr, ast.Assign)) else None
        assert isinstance(call, ast.Call) and ast.unparse(call.func) == "require", (
            f"{name} starts with {ast.unparse(first)}"
        )
        assert ast.unparse(call.args[0]) == roles[name], (
            f"{name}: require({ast.unparse(call.args[0])}), navigation {roles[name]}"
        )


def test_an_uploaded_label_file_is_read_by_its_content_not_its_name(db, settings, tmp_path):
    """The Export / import page hands the upload's bytes to import_file: a PNG named labels.csv is refused."""
    write_image(tmp_path / "picture.png", 3)
    with pytest.raises(UserError, match="labels.csv, line [0-9]+: not UTF-8 text"):
        import_file(
            db, "default", (tmp_path / "picture.png").read_bytes(), file_name="labels.csv", create_classes=False
        )
