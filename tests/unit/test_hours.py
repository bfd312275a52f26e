"""``--hours``: windows of the day in which transcoding starts, and the gate that holds the
files found outside them; and ``--nice``/``--ionice`` as settings take them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autotranscode import settings as settings_mod
from autotranscode.errors import ConfigError
from autotranscode.hours import RECHECK_SECONDS, Gate, Hours
from autotranscode.procs import IoPriority
from autotranscode.stages import FileState

DAY = datetime(2026, 3, 14)


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


def test_a_window_is_open_from_its_start_up_to_its_end() -> None:
    hours = Hours.parse("01:00-07:00")
    assert not hours.open_at(at(0, 59, 59))
    assert hours.open_at(at(1))
    assert hours.open_at(at(6, 59, 59))
    assert not hours.open_at(at(7))
    assert hours.next_opening(at(7)) == at(1) + timedelta(days=1)
    assert hours.next_opening(at(0, 30)) == at(1)
    assert hours.next_opening(at(3)) == at(3)


def test_a_window_across_midnight_and_several_windows() -> None:
    night = Hours.parse("22:00-02:00")
    assert night.open_at(at(23)) and night.open_at(at(1, 59)) and night.open_at(at(22))
    assert not night.open_at(at(2)) and not night.open_at(at(12))
    assert night.next_opening(at(2)) == at(22)
    two = Hours.parse("22:00-02:00, 12:00-13:30:15")
    assert two.open_at(at(13, 30, 14)) and not two.open_at(at(13, 30, 15))
    assert two.next_opening(at(9)) == at(12)
    assert two.next_opening(at(14)) == at(22)
    assert Hours.parse("00:00-24:00").open_at(at(23, 59, 59))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("01:00", "no window"),
        ("1-7", "no time of day"),
        ("25:00-07:00", "from 00:00 to 24:00"),
        ("01:60-07:00", "from 00:00 to 24:00"),
        ("03:00-03:00", "starts when it ends"),
        ("01:00-07:00,", "no window"),
    ],
)
def test_a_bad_window_is_one_line_naming_the_option(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_mod.build({"hours": text})
    assert str(caught.value).startswith("--hours: ")
    assert said in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_gate_holds_outside_the_hours_notes_once_and_looks_again_at_the_opening() -> None:
    now = [at(0, 59, 57)]
    gate = Gate(Hours.parse("01:00-07:00"), clock=lambda: now[0])
    assert gate.hold("f", FileState.DISCOVERED) == (3.0, "waiting for 01:00")
    assert gate.hold("f", FileState.UPLOADED) == (3.0, None)  # noted already
    # Taken, sent or finished: never held (a job running when the hours end finishes).
    assert gate.hold("f", FileState.UPLOADING) is None
    assert gate.hold("f", FileState.TRANSCODING) is None
    now[0] = at(1)
    assert gate.hold("f", FileState.DISCOVERED) is None
    now[0] = at(12)  # hours away: looked at again now and then (a clock may change)
    assert gate.hold("f", FileState.DISCOVERED) == (RECHECK_SECONDS, "waiting for 01:00")
    assert Gate(None).hold("f", FileState.DISCOVERED) is None


def test_the_note_names_seconds_only_when_the_window_has_them() -> None:
    gate = Gate(Hours.parse("10:00:30-11:00"), clock=lambda: at(10))
    assert gate.hold("f", FileState.DISCOVERED) == (30.0, "waiting for 10:00:30")


def test_priorities_are_taken_as_ionice_takes_them_and_realtime_is_refused() -> None:
    assert IoPriority.parse("idle") == IoPriority(3)
    assert IoPriority.parse("best-effort") == IoPriority(2, 4)
    assert IoPriority.parse("best-effort:7") == IoPriority(2, 7)
    assert IoPriority.parse("2:0") == IoPriority(2, 0)
    assert IoPriority.parse("3") == IoPriority(3)
    for bad in ("realtime", "1", "best-effort:8", "idle:3", "fast"):
        with pytest.raises(ConfigError, match=r"^--ionice: "):
            settings_mod.build({"ionice": bad})
    with pytest.raises(ConfigError, match=r"^--nice: a whole number from 0 to 19"):
        settings_mod.build({"nice": 20})


def test_the_config_file_sets_hours_nice_ionice_and_rescan(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('hours = "01:00-07:00"\nnice = 15\nionice = "idle"\nrescan = 600\n')
    s = settings_mod.build(settings_mod.load_file(config))
    assert (s.hours, s.nice, s.ionice, s.rescan) == ("01:00-07:00", 15, "idle", 600.0)
    config.write_text('hours = "7 to 9"\n')
    with pytest.raises(ConfigError, match="--hours: '7 to 9' is no window"):
        settings_mod.load_file(config)
