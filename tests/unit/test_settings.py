"""Settings: defaults, validation into ConfigError, the TOML config file, and file matching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from autotranscode import settings
from autotranscode.errors import ConfigError
from autotranscode.media import presets
from autotranscode.media.probe import DEFAULT_EXTENSIONS
from autotranscode.messages import MAX_OUTPUTS
from autotranscode.settings import Settings


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults that depend on the environment are computed from a known one."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


# --- defaults ------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    s = settings.build({})
    assert s.backend == "local"
    assert s.preset == (presets.DEFAULT_PRESET,)
    assert s.workers == settings.DEFAULT_WORKERS == 1
    assert s.settle == settings.DEFAULT_SETTLE_SECONDS
    assert s.transfers == settings.DEFAULT_TRANSFERS
    assert s.visibility_timeout == settings.DEFAULT_VISIBILITY_SECONDS
    assert s.max_attempts == settings.DEFAULT_MAX_ATTEMPTS
    assert s.pattern == ()
    assert s.poll is False
    assert s.ffmpeg is None
    assert s.name == settings.DEFAULT_NAME
    assert s.endpoint_url is None and s.region is None and s.profile is None
    assert s.state_dir == tmp_path / "xdg-state" / "autotranscode"


def test_default_paths_follow_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.default_state_dir() == tmp_path / "xdg-state" / "autotranscode"
    assert settings.default_config_file() == tmp_path / "xdg-config" / "autotranscode/config.toml"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings.default_state_dir() == tmp_path / "home" / ".local/state/autotranscode"


def test_build_drops_none_and_keeps_values(tmp_path: Path) -> None:
    s = settings.build(
        {
            "workers": 3,
            "state_dir": tmp_path / "st",
            "preset": ("web-1080p", "audio-aac"),
            "pattern": ("*.mov",),
            "ffmpeg": None,
            "settle": 0,
            "backend": "aws",
            "name": "my-pipe-2",
        }
    )
    assert s.workers == 3
    assert s.state_dir == tmp_path / "st"
    assert s.preset == ("web-1080p", "audio-aac")
    assert s.pattern == ("*.mov",)
    assert s.ffmpeg is None
    assert s.settle == 0
    assert (s.backend, s.name) == ("aws", "my-pipe-2")


def test_settings_are_frozen() -> None:
    s = settings.build({})
    with pytest.raises(AttributeError):
        s.workers = 5  # type: ignore[misc]


def test_presets_resolve_aliases_and_drop_duplicates() -> None:
    s = settings.build({"preset": ("1351620000001-000010", "web-720p", "audio-aac", "audio-aac")})
    assert s.preset == ("web-720p", "audio-aac")
    assert settings.build({"preset": ()}).preset == (presets.DEFAULT_PRESET,)


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"workers": -1}, "--workers"),
        ({"workers": 65}, "--workers"),
        ({"workers": "many"}, "--workers"),
        ({"transfers": 0}, "--transfers"),
        ({"settle": -0.5}, "--settle"),
        ({"visibility_timeout": 1}, "--visibility-timeout"),
        ({"max_attempts": 0}, "--max-attempts"),
        ({"backend": "gcs"}, "--backend"),
        ({"name": "Has_Upper"}, "--name"),
        ({"name": "x" * 25}, "--name"),
        ({"name": "-leading"}, "--name"),
        ({"state_dir": 12}, "--state-dir"),
        ({"poll": "sometimes"}, "--poll"),
        ({"bogus": 1}, "--bogus"),
    ],
)
def test_build_errors_are_config_errors_naming_the_option(
    values: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings.build(values)
    message = str(info.value)
    assert message.startswith(f"{option}:"), message
    assert "\n" not in message
    if option != "--bogus":
        assert isinstance(info.value.__cause__, msgspec.ValidationError)


def test_build_refuses_more_presets_than_a_job_may_carry() -> None:
    many = [f"custom-{i}" for i in range(MAX_OUTPUTS + 1)]
    catalog = presets.Catalog.define({name: {"extends": "web-720p"} for name in many})
    few = settings.build({"preset": tuple(many[:MAX_OUTPUTS]), "catalog": catalog})
    assert len(few.preset) == MAX_OUTPUTS
    with pytest.raises(ConfigError, match=rf"^--preset: at most {MAX_OUTPUTS} presets"):
        settings.build({"preset": tuple(many), "catalog": catalog})
    assert settings.build({"preset": ("web-720p",) * (MAX_OUTPUTS + 1)}).preset == ("web-720p",)


def test_build_unknown_preset_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="web-720p") as info:
        settings.build({"preset": ("web-8k",)})
    assert "web-8k" in str(info.value)


def test_name_explains_the_rule() -> None:
    with pytest.raises(ConfigError, match="lowercase letters, digits and hyphens"):
        settings.build({"name": "UPPER"})


# --- config file ---------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_file_with_dashed_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'state-dir = "/srv/at"\nvisibility-timeout = 120\nmax-attempts = 5\n'
        'endpoint-url = "http://127.0.0.1:5000"\nworkers = 2\npoll = true\n',
    )
    values = settings.load_file(path)
    assert values == {
        "state_dir": "/srv/at",
        "visibility_timeout": 120,
        "max_attempts": 5,
        "endpoint_url": "http://127.0.0.1:5000",
        "workers": 2,
        "poll": True,
    }
    s = settings.build(values)
    assert s.state_dir == Path("/srv/at")
    assert (s.visibility_timeout, s.max_attempts, s.workers, s.poll) == (120, 5, 2, True)


def test_load_file_with_underscored_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, 'state_dir = "/srv/at"\nvisibility_timeout = 90\nsettle = 1.5\n')
    values = settings.load_file(path)
    assert values == {"state_dir": "/srv/at", "visibility_timeout": 90, "settle": 1.5}


def test_load_file_preset_and_pattern_as_string_become_tuples(tmp_path: Path) -> None:
    path = _write(tmp_path, 'preset = "web-1080p"\npattern = "*.mov"\n')
    s = settings.build(settings.load_file(path))
    assert s.preset == ("web-1080p",)
    assert s.pattern == ("*.mov",)


def test_load_file_preset_as_list(tmp_path: Path) -> None:
    path = _write(tmp_path, 'preset = ["web-1080p", "audio-aac"]\n')
    assert settings.build(settings.load_file(path)).preset == ("web-1080p", "audio-aac")


def test_load_file_empty_file_is_fine(tmp_path: Path) -> None:
    assert settings.load_file(_write(tmp_path, "# nothing here\n")) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wrkers = 2\n", "unknown setting 'wrkers'"),
        ("[aws]\nregion = 'x'\n", "unknown setting 'aws'"),
        ("workers = -1\n", "--workers"),
        ('workers = "two"\n', "--workers"),
        ('backend = "azure"\n', "--backend"),
        ("state-dir = 5\n", "--state-dir"),
        ('name = "Bad Name"\n', "--name"),
        ("workers = \n", "cannot be read"),
        ("this is not toml", "cannot be read"),
        ('catalog = "mine"\n', "unknown setting 'catalog'"),
        ("[presets.mine]\nextends = 'web-4k'\n", "preset mine: 'extends' must name"),
        ("[presets]\nmine = 'web-720p'\n", "[presets] must hold one table per preset"),
        ("preset = 'theirs'\n[presets.mine]\nextends = 'web-720p'\n", "unknown preset 'theirs'"),
    ],
)
def test_load_file_rejects_bad_entries_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        settings.load_file(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_custom_presets_of_the_file_are_the_settings_own(tmp_path: Path) -> None:
    """A value of the settings, not a registry: two configurations in one process (a client
    and a worker, or two tests) each see their own custom presets and never the other's."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ours = settings.build(
        settings.load_file(
            _write(
                tmp_path / "a", "preset = 'mine'\n[presets.mine]\nextends = 'web-720p'\ncrf = 26\n"
            )
        )
    )
    theirs = settings.build(
        settings.load_file(
            _write(
                tmp_path / "b",
                "[presets.mine]\nextends = 'web-720p'\ncrf = 30\n"
                "[presets.other]\nextends = 'audio-aac'\n",
            )
        )
    )
    assert ours.preset == ("mine",)
    assert ours.catalog.get("mine").video_args != theirs.catalog.get("mine").video_args
    assert [p.id for p in theirs.catalog.all()][-2:] == ["mine", "other"]
    with pytest.raises(ConfigError, match="unknown preset 'other'"):
        ours.catalog.get("other")
    with pytest.raises(ConfigError, match="--preset: unknown preset 'mine'"):
        settings.build({"preset": ("mine",)})  # no file, no custom presets
    assert settings.build({}).catalog == presets.DEFAULT_CATALOG
    assert settings.load_file(_write(tmp_path, "workers = 2\n")) == {"workers": 2}


def test_load_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        settings.load_file(path)
    assert str(path) in str(info.value)


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("clip.mp4", True),
        ("CLIP.MOV", True),
        ("Früh stück — 東京 clip.mkv", True),
        ("take 1.m4a", True),
        ("song.FLAC", True),
        ("archive.mp4.zip", False),
        ("notes.txt", False),
        ("mp4", False),
        ("README", False),
    ],
)
def test_matches_default_extensions(name: str, expected: bool) -> None:
    assert settings.build({}).matches(name) is expected


def test_matches_pattern_replaces_the_default_extensions() -> None:
    s = settings.build({"pattern": ("*.mov", "cam_*")})
    assert s.matches("a.mov")
    assert s.matches("A.MOV")
    assert s.matches("cam_0001.dat")
    assert not s.matches("a.mp4")
    assert not s.matches("notes.txt")


def test_every_default_extension_matches() -> None:
    s = Settings()
    for ext in DEFAULT_EXTENSIONS:
        assert s.matches(f"x{ext}")
        assert s.matches(f"X{ext.upper()}")


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"preset": ["web-720p", "poster"]}, "--in-place: give exactly one video preset"),
        ({"preset": ["audio-aac"]}, "--in-place: give exactly one video preset"),
        ({"on_success": "delete"}, "--on-success: not with --in-place"),
        ({"replace": "sometimes"}, "--replace: one of always, never, smaller"),
        ({"keep_days": -1}, "--keep-days: a whole number from 0 to 3650"),
    ],
)
def test_in_place_takes_one_video_preset(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        settings.build({"in_place": True, **values})


def test_in_place_defaults() -> None:
    s = settings.build({"in_place": True, "preset": ["hevc-1080p"]})
    assert (s.replace, s.keep_days, s.keep_originals) == ("smaller", 7, None)


def test_in_place_takes_video_files_only_unless_a_pattern_says() -> None:
    """Its one preset is a video preset: a library's music would only fail."""
    s = settings.build({"in_place": True})
    assert s.matches("ep1.MKV") and s.matches("ep1.avi")
    assert not s.matches("song.mp3") and not s.matches("song.flac")
    assert settings.build({"in_place": True, "pattern": ["*.mp3"]}).matches("song.mp3")
