"""``autotranscode library PATH...``: convert a media library in place, as its owner would.

Its defaults differ from ``transcode``'s where a library's owner would want them to: the
whole tree (recursive); hevc-1080p (the same picture at about half the size of H.264,
played by every current TV, phone and media server; 720p would throw away detail the
library has); replaced only when smaller; sidecars left where they are (the stem stays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .files import transcode_files
from .logs import Logs, logging_options
from .notify import notify_options
from .options import (
    Command,
    aws_options,
    backend_option,
    config_option,
    dry_run_option,
    ffmpeg_option,
    force_option,
    hours_option,
    measure_quality_option,
    options,
    pattern_option,
    priority_options,
    quality_option,
    replacing_options,
    setting,
    state_dir_option,
    workers_option,
)

#: The preset a library is converted with unless --preset (or the config file) says.
LIBRARY_PRESET = "hevc-1080p"


@click.command(cls=Command)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@dry_run_option
@setting(
    "--preset",
    multiple=True,
    envvar="AUTOTRANSCODE_PRESET",
    help="The one video preset each file is converted with",
    default_text=LIBRARY_PRESET,
)
@options(
    quality_option,
    measure_quality_option,
    replacing_options,
    force_option,
    pattern_option,
    workers_option,
    hours_option,
    priority_options,
    ffmpeg_option,
    notify_options,
    config_option,
    backend_option,
    state_dir_option,
    aws_options,
    logging_options,
)
def library(paths: tuple[Path, ...], dry_run: bool, force: bool, logs: Logs, **params: Any) -> None:
    """Convert the media files under PATHS in place, then exit: each is replaced by its
    output in its own folder (ep1.avi -> ep1.mp4) once the output is verified and, by
    default, smaller; the original goes to the trash for --keep-days.

    Start with --dry-run: it says what would be done to each file and the space it would
    save, and writes nothing. A file converted before is known by its stamp and never
    converted again. Exit status as for `transcode`.
    """
    params.update(in_place=True, preset=params.get("preset") or (LIBRARY_PRESET,))
    transcode_files(paths, None, True, force, dry_run, logs, params)
