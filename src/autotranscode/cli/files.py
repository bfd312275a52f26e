"""The commands that transcode files: run, transcode, retry, worker; and presets to pick from."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..journal import FileRecord, FileState, Journal
from ..media import presets
from ..media.probe import MediaInfo, ignored
from ..media.transcoder import command
from ..outcomes import Outcome, partly_done, redo
from ..pipeline import Pipeline
from ..service import JOURNAL_FILE, Service, StateDirBusy, serving
from ..settings import Settings
from ..sources import DONE_FOLDER, reset_failed
from ..stages import FINISHED, Stage
from ..text import shown
from .logs import Logs, logging_options, start_logging
from .notify import notify_config, notify_options
from .options import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Command,
    CommandGroup,
    Stopper,
    audio_option,
    aws_options,
    backend_option,
    chunk_scenes_option,
    chunk_seconds_option,
    config_option,
    dry_run_option,
    endpoint_option,
    errors,
    existing_state_dir,
    ffmpeg_option,
    force_option,
    hours_option,
    in_place_option,
    measure_quality_option,
    name_option,
    on_success_option,
    options,
    pattern_option,
    plural,
    preset_option,
    priority_options,
    profile_option,
    quality_option,
    region_option,
    replacing_options,
    reporter_for,
    rescan_option,
    setting,
    settings_from,
    sidecars_option,
    state_dir_option,
    terminal,
    threads_option,
    workers_option,
)
from .web import dashboard, web_option

log = logging.getLogger(__name__)

#: A stop asked while the main thread was between its check and its wait is seen this late.
STOP_CHECK_SECONDS = 1.0


def _wait_or_stop(pipe: Pipeline, fids: list[str], stopper: Stopper) -> None:
    """Until the files are finished or Ctrl+C: asleep, not polling (each wake-up costs CPU)."""
    stopper.on_stop.append(pipe.wake)
    while not pipe.wait(fids, timeout=STOP_CHECK_SECONDS) and not stopper.event.is_set():
        pass


#: What run and transcode share: what to make, where things live, and who transcodes.
_transcoding_options = options(
    force_option,
    on_success_option,
    sidecars_option,
    in_place_option,
    replacing_options,
    preset_option,
    audio_option,
    quality_option,
    measure_quality_option,
    pattern_option,
    workers_option,
    chunk_seconds_option,
    chunk_scenes_option,
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


@click.command(cls=Command)
@click.argument("drop", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", required=False, type=click.Path(file_okay=False, path_type=Path))
@setting(
    "--settle",
    type=float,
    envvar="AUTOTRANSCODE_SETTLE",
    help="Seconds a file must stay unchanged before it is taken",
)
@click.option(
    "--poll",
    is_flag=True,
    default=None,
    envvar="AUTOTRANSCODE_POLL",
    help="Poll the folder instead of using file events (network shares).",
)
@click.option(
    "--recursive",
    is_flag=True,
    help="Also watch subfolders of DROP; each output goes to the same subfolder of OUT.",
)
@rescan_option
@web_option
@_transcoding_options
def run(
    drop: Path, out: Path | None, recursive: bool, force: bool, logs: Logs, **params: Any
) -> None:
    """Watch DROP; transcode each new media file into OUT until Ctrl+C (--in-place: no OUT,
    each file is replaced in DROP).

    Files already in DROP are taken at start-up unless they were done before; work
    a previous run left unfinished is resumed. Exit status 130 after Ctrl+C, 0 after
    SIGTERM (a service manager's stop).
    """
    console = terminal()
    stopper = Stopper()
    with errors():
        start_logging(logs, console, progress=True)
        s = settings_from(params)
        if not drop.is_dir():
            raise ConfigError(f"drop folder {drop} does not exist")
        if (out is None) != s.in_place:
            raise click.UsageError(
                "give OUT, or --in-place (then no OUT: each file is replaced where it is)"
            )
        if out is None:
            out = drop
        else:
            _check_folders(drop, out)
        reporter = reporter_for(console)
        from ..watcher import Watcher  # watchdog: for run only, not every start

        notify = notify_config(params)
        with (
            Service(s, out, reporter, notify) as service,
            dashboard(params, s, drop, out, backend=service.backend),
        ):
            pipe = service.pipeline
            watcher = Watcher(
                drop,
                functools.partial(pipe.add, force=force, under=drop if recursive else None),
                matches=s.matches,
                settle=s.settle,
                rescan=s.rescan,
                poll=s.poll,
                recursive=recursive,
                exclude=_excluded(s, out, drop),
                skip_folders=(DONE_FOLDER,),
                on_skipped=pipe.skip,
                hooks=reporter,
            )
            stopper.install()
            with reporter:
                pipe.start()
                watcher.start()
                log.info(
                    "watching %s -> %s (%s backend); Ctrl+C to stop",
                    shown(str(drop)),
                    shown(str(out)),
                    s.backend,
                )
                if s.hours:
                    log.info("transcoding starts only in the hours %s (local time)", s.hours)
                try:
                    stopper.event.wait()
                finally:
                    watcher.stop()
    sys.exit(EXIT_INTERRUPTED if stopper.signum == signal.SIGINT else EXIT_OK)


def _excluded(s: Settings, out: Path, drop: Path) -> tuple[Path, ...]:
    """Folders whose files are never taken: OUT (not in place: it is DROP then), the state
    dir, the done folder, and where replaced originals go."""
    folders = [s.state_dir, drop / DONE_FOLDER] + ([] if s.in_place else [out])
    return tuple(folders + ([s.keep_originals] if s.keep_originals else []))


def _check_folders(drop: Path, out: Path) -> None:
    """OUT may be inside DROP or hold it (the watcher keeps them apart), but not be DROP:
    every output would be a new drop."""
    same = drop.resolve() == out.resolve()
    with contextlib.suppress(OSError):
        same = same or os.path.samefile(drop, out)
    if same:
        raise ConfigError(
            f"OUT ({out}) is the drop folder itself: give the outputs a folder of their own "
            "(one inside DROP, or beside it)"
        )


@click.command(cls=Command)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the outputs [default: the current folder; none with --in-place].",
)
@click.option(
    "--recursive",
    is_flag=True,
    help="Also take the files in a folder's subfolders; each output goes to the same "
    "subfolder of --out.",
)
@dry_run_option
@_transcoding_options
def transcode(
    files: tuple[Path, ...],
    out: Path | None,
    recursive: bool,
    force: bool,
    dry_run: bool,
    logs: Logs,
    **params: Any,
) -> None:
    """Transcode FILES (or the media files in a folder, --recursive: in its tree) into --out,
    then exit.

    Exit status 0 when every file succeeded, 1 when some failed or were partly done (an
    output could not be made; see the summary), 130 after Ctrl+C.
    """
    transcode_files(files, out, recursive, force, dry_run, logs, params)


def transcode_files(
    files: tuple[Path, ...],
    out: Path | None,
    recursive: bool,
    force: bool,
    dry_run: bool,
    logs: Logs,
    params: dict[str, Any],
) -> None:
    """``transcode``, and ``library`` (in place, its own defaults): then exit."""
    console = terminal()
    stopper = Stopper()
    with errors():
        start_logging(logs, console, progress=True)
        s = settings_from(params)
        if s.in_place and out is not None:
            raise click.UsageError("--out: not with --in-place (each file is replaced where it is)")
        if dry_run and not s.in_place:
            raise click.UsageError("--dry-run: only in place (--in-place, or `library`)")
        if dry_run:
            from .plan import show_plan

            show_plan(_expand(files, s, recursive), s)
            sys.exit(EXIT_OK)
        # In place, the files are listed once the swaps a crash left are finished.
        found = [] if s.in_place else _expand(files, s, recursive)
        out = _library_root(files) if s.in_place else out or Path(".")
        reporter = reporter_for(console)
        with Service(s, out, reporter, notify_config(params)) as service:
            pipe = service.pipeline
            stopper.install()
            with reporter:
                pipe.start(resume=False)
                if s.in_place:
                    found = _expand(files, s, recursive)
                fids = [
                    pipe.add(path, retry_failed=True, force=force, under=under)
                    for path, under in found
                ]
                _wait_or_stop(pipe, fids, stopper)
                results = [  # in a tree, the name from where it is: Season 1/ep1.avi
                    replace(outcome, path=path.relative_to(under) if recursive else path)
                    for (path, under), outcome in zip(found, map(pipe.outcome, fids), strict=True)
                ]
    interrupted = stopper.event.is_set()
    failed = _summary(results, interrupted, whole=recursive)
    sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED if failed else EXIT_OK)


def _library_root(files: tuple[Path, ...]) -> Path:
    """In place, OUT is only where the pipeline starts from: the first folder given."""
    first = files[0]
    return Path(os.path.abspath(first if first.is_dir() else first.parent))


def _expand(files: tuple[Path, ...], s: Settings, recursive: bool) -> list[tuple[Path, Path]]:
    """Each file to take, with the folder its place in OUT is relative to: a folder given
    (its tree kept, with --recursive), or the file's own."""
    out: list[tuple[Path, Path]] = []
    for f in files:
        try:
            folder = f.is_dir()
        except OSError:  # a path we may not look at: the pipeline reports it as that file's
            folder = False
        if not folder:
            out.append((f, f.parent))
            continue
        skipped: list[str] = []
        for root, dirs, names in os.walk(f):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and d != DONE_FOLDER
                and (s.keep_originals is None or Path(root, d) != s.keep_originals)
            )
            if not recursive:
                skipped += dirs
                dirs.clear()
            out += [
                (Path(root) / n, f)
                for n in sorted(names)
                if not ignored(n) and s.matches(n) and (Path(root) / n).is_file()
            ]
        if skipped:
            listed = ", ".join(shown(d) for d in skipped)
            click.echo(
                f"{shown(str(f))}: {plural(len(skipped), 'subfolder')} not looked into "
                f"({listed}); --recursive takes them",
                err=True,
            )
    return out


def _summary(results: list[Outcome], interrupted: bool, whole: bool = False) -> int:
    """Print each file's outcome and the counts; how many failed or were partly done.
    ``whole``: each file by its path as given, not only its name."""
    failed = partly = 0
    for outcome in results:
        name = shown(str(outcome.path) if whole else outcome.path.name)
        detail, state = shown(outcome.detail), outcome.state
        if outcome.stage == Stage.PARTLY_DONE:
            partly += 1
            click.echo(f"PARTLY DONE {name} -> {detail}")
        elif state == FileState.CLEANED:
            click.echo(f"ok      {name} -> {detail}")
        elif state == FileState.FAILED:
            failed += 1
            click.echo(f"FAILED  {name}: {detail}")
        elif state == FileState.SKIPPED:
            click.echo(f"skipped {name}: {detail}")
        else:
            click.echo(f"pending {name} ({state.lower()}; resumes on the next run)")
    done = sum(1 for o in results if o.stage == Stage.DONE)
    counts = f"{done} done, " + (f"{partly} partly done, " if partly else "") + f"{failed} failed"
    click.echo(counts + (" (interrupted)" if interrupted else ""))
    return failed + partly


@click.command(cls=Command)
@setting(
    "--workers",
    type=int,
    envvar="AUTOTRANSCODE_WORKERS",
    help="Jobs this process runs at once (one libx264 encode already keeps about two cores "
    "busy); 0, a client's setting in a shared config, counts as 1",
)
@hours_option
@priority_options
@threads_option
@ffmpeg_option
@config_option
@backend_option
@state_dir_option
@options(endpoint_option, region_option, profile_option, name_option)
@logging_options
def worker(logs: Logs, **params: Any) -> None:
    """Serve transcoding jobs from the job queue until Ctrl+C (run one per machine, or more).

    Its log is INFO by default (a line per job); exit status 0 once stopped.
    """
    stopper = Stopper()
    with errors():
        start_logging(logs, least=1)
        s = settings_from(params)
        with serving(s):
            stopper.install()
            stopper.event.wait()
    sys.exit(EXIT_OK)


@click.group("presets", cls=CommandGroup, invoke_without_command=True)
@config_option
@click.pass_context
def presets_cmd(ctx: click.Context) -> None:
    """List output presets ("presets show NAME" prints the exact ffmpeg command).

    Custom presets come from [presets.NAME] tables in the config file.
    """
    if ctx.invoked_subcommand is None:
        from rich.console import Console
        from rich.table import Table

        table = Table("preset", "output", "description", box=None)
        for p in _catalog().all():
            table.add_row(p.id, p.extension + ("/" if p.folder else ""), p.description)
        Console().print(table)


def _catalog() -> presets.Catalog:
    """The presets of the config file that ``--config`` read, for this command or its group."""
    ctx: click.Context | None = click.get_current_context()
    while ctx is not None:
        if ctx.default_map and "catalog" in ctx.default_map:
            return ctx.default_map["catalog"]  # type: ignore[no-any-return]
        ctx = ctx.parent
    return presets.DEFAULT_CATALOG


@presets_cmd.command("show")
@click.argument("name")
@config_option
def presets_show(name: str) -> None:
    """Print the ffmpeg command NAME runs, for a 1080p source with audio."""
    with errors():
        preset = _catalog().get(name)
        source = MediaInfo(60.0, "mov", "prores", 1920, 1080, "pcm_s16le")
        cmd = command("ffmpeg", preset, source, Path("INPUT"), Path(f"OUTPUT{preset.extension}"))
        click.echo(shlex.join(cmd))


@click.command(cls=Command)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--all-failed", is_flag=True, help="Retry every failed file.")
@options(
    workers_option,
    ffmpeg_option,
    config_option,
    backend_option,
    state_dir_option,
    aws_options,
    logging_options,
)
def retry(files: tuple[Path, ...], all_failed: bool, logs: Logs, **params: Any) -> None:
    """Try failed FILES (or --all-failed) again, to the folder and presets they had.

    A partly done file is tried again for the outputs it lacks.

    A named file still in flight (its job lost while no `run` worked on it) is taken
    too: its job is submitted again.

    If `run` is active on this state dir it takes them over within seconds;
    otherwise they are transcoded now, as `transcode` would.
    """
    if not files and not all_failed:
        raise click.UsageError("name the failed files to retry, or pass --all-failed")
    console = terminal()
    stopper = Stopper()
    with errors():
        start_logging(logs, console, progress=True)
        s = settings_from(params)
        journal = Journal(existing_state_dir(s.state_dir) / JOURNAL_FILE)
        try:
            journal.supersede_failed()  # a later version of a path is the one to retry
            latest: dict[str, FileRecord] = {}
            for record in journal.recent(1_000_000):  # newest first
                latest.setdefault(str(record.path), record)
            wanted = {os.path.abspath(f) for f in files}
            partly = partly_done(journal, None if all_failed else wanted)
        finally:
            journal.close()
        named = {f: latest.get(os.path.abspath(f)) for f in files}
        again = {str(r.path) for r in partly}  # delivered, but with outputs to make again
        refused = [
            None if os.path.abspath(f) in again else _not_retried(f, r, s.state_dir)
            for f, r in named.items()
        ]
        for problem in filter(None, refused):
            click.echo(f"error: {problem}", err=True)
        if any(refused):
            sys.exit(EXIT_CONFIG)
        failed = [
            r
            for r in latest.values()
            if r.state == FileState.FAILED and (all_failed or r in named.values())
        ]
        failed += partly
        # A named file still in flight (its job lost, say) is taken too: nothing else
        # would move it while no `run` works on this state dir.
        stuck = [r for r in named.values() if r is not None and r.state not in FINISHED]
        if not failed and not stuck:
            click.echo("no failed or unfinished files to retry")
            sys.exit(EXIT_OK)
        reporter = reporter_for(console)
        with contextlib.ExitStack() as stack:
            try:
                service = stack.enter_context(Service(s, Path("."), reporter))
            except StateDirBusy:  # a run is active: it picks reset files up by itself
                journal = Journal(s.state_dir / JOURNAL_FILE)
                for record in failed:
                    if record.state == FileState.CLEANED:  # partly done
                        redo(journal, s.catalog, record)
                    else:
                        reset_failed(journal, record)
                journal.close()
                click.echo(f"{plural(len(failed), 'file')} handed to the running autotranscode")
                for record in stuck:
                    click.echo(
                        f"{shown(record.name)} is in flight ({record.state.lower()}) in the "
                        "running autotranscode, which submits its job again if it was lost"
                    )
                sys.exit(EXIT_OK)
            failed += stuck
            pipe = service.pipeline
            stopper.install()
            with reporter:
                pipe.start(resume=False)
                fids = [pipe.retry(record) for record in failed]
                _wait_or_stop(pipe, fids, stopper)
                results = [pipe.outcome(fid) for fid in fids]
    interrupted = stopper.event.is_set()
    failures = _summary(results, interrupted)
    sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_FAILED if failures else EXIT_OK)


def _not_retried(name: Path, record: FileRecord | None, state_dir: Path) -> str | None:
    """Why a file named to ``retry`` cannot be retried, or None if it can: failed, or in
    flight."""
    if record is None:
        return (
            f"{shown(str(name))}: not in the journal of {shown(str(state_dir))} (never taken there)"
        )
    if record.state == FileState.CLEANED:
        return (
            f"{shown(str(name))}: done already, nothing to retry (`transcode --force` makes it "
            "again)"
        )
    if record.state == FileState.SKIPPED:
        return f"{shown(str(name))}: skipped ({shown(record.reason or '')}), nothing to retry"
    return None
