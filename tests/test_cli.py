import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.images import write_image

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, env_home: Path):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "BANANA_HOME": str(env_home)},
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_module_entry_point_runs_ingest(tmp_path):
    write_image(tmp_path / "images" / "a.png", 1)

    run = _cli("ingest", str(tmp_path / "images"), env_home=tmp_path / "home")

    assert run.returncode == 0 and "added: 1" in run.stdout, run.stderr


def test_ingest_prints_counts_and_lists_rejected_files(home, tmp_path, capsys):
    write_image(tmp_path / "images" / "a.png", 1)
    write_image(tmp_path / "images" / "copy" / "a.png", 1)
    (tmp_path / "images" / "bad.jpg").write_bytes(b"nope")

    assert main(["ingest", str(tmp_path / "images"), "--project", "cats"]) == 0
    first = capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "images"), "--project", "cats"]) == 0
    second = capsys.readouterr().out

    assert "project 'cats'" in first
    for line in ("added: 1", "skipped-known: 0", "duplicates: 1", "errors: 1", "  bad.jpg: "):
        assert line in first
    for line in ("added: 0", "skipped-known: 3", "duplicates: 0", "errors: 0"):
        assert line in second
    assert "project now holds 1 images, 1 rejected files, 1 duplicate files" in second


def test_missing_path_fails_with_a_clear_message(home, tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err


def test_bad_configuration_fails_with_a_clear_message(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BANANA_MAX_IMAGE_BYTES", "big")
    assert main(["ingest", str(tmp_path)]) == 1
    assert "max_image_bytes must be an integer" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["ingest"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "mentions"), [(["--help"], "ingest"), (["ingest", "--help"], "--project")])
def test_help_exits_0(argv, mentions, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and mentions in out


@pytest.mark.slow
def test_building_the_parser_never_imports_torch():
    # Every subcommand pays for what the parser imports; torch alone takes seconds.
    code = "import sys; from app.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "False"


def test_embed_help_lists_every_backbone_name():
    from app.commands.embed import BACKBONE_NAMES
    from core.features.backbones import BACKBONE_NAMES as registry_names

    assert BACKBONE_NAMES == registry_names
