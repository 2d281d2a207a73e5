from pathlib import Path

import pytest

from services.config import PILLOW_PIXEL_LIMIT, Settings, load_settings
from services.errors import UserError


def test_defaults_put_everything_under_dot_banana(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.home == tmp_path / ".banana"
    assert settings.database_url == f"sqlite:///{tmp_path / '.banana' / 'banana.db'}"
    assert settings.backbone is None  # each project has its own
    assert settings.max_image_pixels == PILLOW_PIXEL_LIMIT


def test_environment_overrides_toml_which_overrides_defaults(tmp_path):
    config = tmp_path / "custom.toml"
    config.write_text(f'home = "{tmp_path / "ws"}"\nbackbone = "from-file"\nmax_image_bytes = 1234\n')
    settings = load_settings({"BANANA_CONFIG": str(config), "BANANA_BACKBONE": "from-env"})
    assert settings.backbone == "from-env"
    assert settings.max_image_bytes == 1234
    assert settings.home == tmp_path / "ws"
    assert settings.database_url == f"sqlite:///{tmp_path / 'ws' / 'banana.db'}"


def test_banana_toml_in_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("banana.toml").write_text('database_url = "sqlite:////elsewhere/x.db"\n')
    assert load_settings({}).database_url == "sqlite:////elsewhere/x.db"


def test_environment_integer_is_converted():
    assert load_settings({"BANANA_INGEST_BATCH_SIZE": "7"}).ingest_batch_size == 7


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BANANA_MAX_IMAGE_BYTES": "lots"}, "max_image_bytes"),
        ({"BANANA_INGEST_BATCH_SIZE": "0"}, "ingest_batch_size"),
        ({"BANANA_MAX_IMAGE_PIXELS": str(PILLOW_PIXEL_LIMIT + 1)}, "max_image_pixels"),
        ({"BANANA_CONFIG": "/nonexistent/banana.toml"}, "/nonexistent/banana.toml"),
    ],
)
def test_bad_values_name_what_to_fix(environ, named):
    with pytest.raises(UserError, match=named):
        load_settings(environ)


def test_unknown_toml_option_is_named(tmp_path):
    config = tmp_path / "banana.toml"
    config.write_text("databse_url = 'sqlite://'\n")
    with pytest.raises(UserError, match="databse_url"):
        load_settings({"BANANA_CONFIG": str(config)})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().backbone = "other"  # type: ignore[misc]
