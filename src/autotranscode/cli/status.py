"""What the state dir's journal says: ``status`` (human, --json, --watch), and
``journal check|rebuild`` for when the journal itself is damaged."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import status as model
from ..deploy import open_backend
from ..journal import Journal
from ..progress import NAME_WIDTH, clock_text, size_text
from ..service import JOURNAL_FILE, client_lock
from ..stages import Stage
from ..text import shown
from .logs import Logs, logging_options, start_logging
from .options import (
    EXIT_ERROR,
    EXIT_FAILED,
    Command,
    CommandGroup,
    Stopper,
    backend_option,
    config_option,
    errors,
    existing_state_dir,
    settings_from,
    state_dir_option,
)

if TYPE_CHECKING:  # rich loads only for a table
    from rich.console import Group
    from rich.text import Text


@click.command(cls=Command)
@click.argument("files", nargs=-1)
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (schema in the README)."
)
@click.option(
    "--limit", default=10, show_default=True, help="Finished files to list, newest first."
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    type=click.Choice([s.value for s in Stage if s.finished]),
    help="List only finished files that ended so; repeatable.",
)
@click.option("--watch", is_flag=True, help="Follow a running pipeline until Ctrl+C.")
@config_option
@state_dir_option
def status(
    files: tuple[str, ...],
    as_json: bool,
    limit: int,
    stages: tuple[str, ...],
    watch: bool,
    **params: Any,
) -> None:
    """Totals, what is in flight (stage, percent, speed, ETA) and the latest finished files;
    with FILE (a path, a name or an id), that file's whole story and its log."""
    with errors():
        s = settings_from(params)
        journal = Journal(existing_state_dir(s.state_dir) / JOURNAL_FILE)
        try:
            journal.supersede_failed()  # what a journal written by an older version may hold
            if files:
                _file_stories(journal, s.state_dir, files, as_json)
                return
            wanted = [Stage(x) for x in stages]

            def view() -> Group:
                report = model.report(journal, s.state_dir, limit, stages=wanted, catalog=s.catalog)
                return _status_view(report)

            if as_json:
                report = model.report(journal, s.state_dir, limit, stages=wanted, catalog=s.catalog)
                click.echo(model.to_json(report).decode())
            elif watch:
                _watch(view)
            else:
                from rich.console import Console

                Console(highlight=False).print(view())
        finally:
            journal.close()


def _file_stories(journal: Journal, state_dir: Path, files: tuple[str, ...], as_json: bool) -> None:
    found: list[model.FileStatus] = []
    unknown = []
    for query in files:
        records = model.find(journal, query)
        if not records:
            unknown.append(query)
        found += [model.file_status(journal, state_dir, r) for r in records]
    for query in unknown:
        click.echo(
            f"error: no file {shown(query)!r} in the journal of {shown(str(state_dir))}", err=True
        )
    if as_json:
        click.echo(model.to_json(model.FileReport(model.SCHEMA_VERSION, found)).decode())
    else:
        from rich.console import Console

        console = Console(highlight=False)
        for i, f in enumerate(found):
            if i:
                console.print()
            console.print(_story_view(f))
    if unknown:
        sys.exit(EXIT_FAILED)


def _watch(view: Callable[[], Group]) -> None:
    """Redraw in place on a terminal; elsewhere print each view that differs from the last."""
    stopper = Stopper(quiet=True)
    from rich.console import Console
    from rich.live import Live

    stopper.install()
    console = Console(highlight=False)
    if console.is_terminal:
        with Live(view(), console=console, refresh_per_second=2) as live:
            while not stopper.event.wait(0.5):
                live.update(view())
        return
    last = None
    while True:
        with console.capture() as capture:
            console.print(view())
        text = capture.get()
        if text != last:
            click.echo(f"--- {time.strftime('%H:%M:%S')}\n{text}", nl=False)
            last = text
        if stopper.event.wait(1.0):
            return


#: The mark before a finished file's line, by how it ended.
_MARKS = {
    Stage.DONE: "[green]✓[/]",
    Stage.PARTLY_DONE: "[yellow]◐[/]",
    Stage.FAILED: "[red]✗[/]",
    Stage.SKIPPED: "[dim]–[/]",
}


def _status_view(report: model.Report) -> Group:
    from rich.console import Group
    from rich.table import Column, Table
    from rich.text import Text

    t = report.totals
    if not t.files:
        return Group(Text("no files yet"))
    parts: list[Any] = [_markup(f"[bold]{_safe(_totals_line(t))}[/]")]
    if t.library is not None and t.library.before:
        shelves = Table.grid(*(Column(no_wrap=True) for _ in range(3)), padding=(0, 2))
        shelves.add_column(no_wrap=True, justify="right")
        shelves.add_column(no_wrap=True, justify="right")
        for side, found in (("before", t.library.before), ("after", t.library.after)):
            for i, s in enumerate(found):
                cells = (side if i == 0 else "", shown(s.codec), s.resolution)
                shelves.add_row(*cells, _plural_n(s.files, "file"), size_text(s.bytes))
        parts += ["", Text("library (done files)", style="bold"), shelves]
    if report.in_flight:
        flight = Table.grid(
            Column(no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH),
            Column(no_wrap=True, overflow="ellipsis"),
            Column(no_wrap=True, justify="right"),
            padding=(0, 2),
        )
        for f in report.in_flight:
            flight.add_row(
                Text(shown(f.name), style="bold"), Text(_doing(f)), clock_text(f.elapsed_seconds)
            )
        parts += ["", Text("in flight", style="bold"), flight]
    if report.recent:
        parts += ["", Text("finished, newest first", style="bold")]
        parts += [_finished_line(f) for f in report.recent]
    return Group(*parts)


def _totals_line(t: model.Totals) -> str:
    counts = " · ".join(f"{n} {stage}" for stage, n in t.by_stage.items())
    line = f"{t.files} {_plural(t.files, 'file')}: {counts}"
    if t.bytes_in:
        line += (
            f" · in {size_text(t.bytes_in)} → out {size_text(t.bytes_out)}"
            f" (saved {size_text(t.bytes_saved)})"
        )
    return line


def _plural_n(n: int, word: str) -> str:
    return f"{n} {_plural(n, word)}"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def _doing(f: model.FileStatus) -> str:
    """An unfinished file's stage as a person reads it, with what its progress says."""
    p = f.progress
    text = f"{f.stage} ({shown(f.note)})" if f.note else str(f.stage)
    if p is None:
        return text
    if p.percent is not None:
        text += f" {p.percent:.0f} %"
    if p.speed:
        text += f" · {p.speed:.2g}×"
    if p.eta_seconds is not None:
        text += f" · ETA {clock_text(p.eta_seconds)}"
    if p.worker:
        text += f" · on {shown(p.worker)}"
    return text


def _finished_line(f: model.FileStatus) -> Text:
    mark = _MARKS.get(f.stage, "")
    head = f"  {mark} [bold]{_safe(shown(f.name))}[/]"
    if f.stage is Stage.DONE:
        done = [o for o in f.outputs if o.status == "done"]
        names = ", ".join(shown(Path(o.path).name) for o in done if o.path)
        line = f"{head} → {_safe(names)}"
        sizes = [o.size for o in done]
        if done and all(s is not None for s in sizes):
            line += f" · {size_text(f.input.size)} → {size_text(sum(s or 0 for s in sizes))}"
        if f.same_as:
            line += f" · same content as {_safe(shown(f.same_as))}"
        if f.warning:
            line += f" · [yellow]warning: {_safe(shown(f.warning))}[/]"
        return _markup(line)
    if f.stage is Stage.PARTLY_DONE:
        bits = []
        for o in f.outputs:
            if o.status == "done":
                bits.append(f"{o.preset} → {shown(Path(o.path).name) if o.path else '?'}")
            else:
                bits.append(f"{o.preset} failed: {shown(o.reason or 'unknown')}")
        return _markup(f"{head} partly done: {_safe('; '.join(bits))}")
    return _markup(f"{head} {f.stage}: {_safe(shown(f.reason or ''))}")


def _story_view(f: model.FileStatus) -> Group:
    """``status FILE``: everything known of one file."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    facts = Table.grid(padding=(0, 2))
    facts.add_row("  id", f.id)
    took = clock_text(f.elapsed_seconds)
    facts.add_row("  stage", Text(f"{_doing(f)} ({'took' if f.outcome else 'for'} {took})"))
    if f.reason:
        facts.add_row("  reason", Text(shown(f.reason)))
    if f.warning:
        facts.add_row("  warning", Text(shown(f.warning)))
    if f.same_as:
        facts.add_row("  same as", Text(shown(f.same_as)))
    facts.add_row("  input", Text(_input_text(f.input)))
    if f.input.content_hash:
        facts.add_row("  content", f"blake3 {f.input.content_hash}")
    if f.job_id:
        facts.add_row("  job", f.job_id)
    parts: list[Any] = [Text(shown(f.path), style="bold"), facts]
    outputs = Table.grid(padding=(0, 2))
    for o in f.outputs:
        outputs.add_row(Text(f"  {o.preset}"), Text(o.status), Text(_output_text(o)))
    parts += [Text("outputs", style="bold"), outputs]
    history = Table.grid(padding=(0, 2))
    start = _when(f.first_seen)
    shown_stage = None
    for step in f.transitions:
        if step.stage is shown_stage and not step.detail:
            continue  # a step within the same stage (uploaded, then submitted)
        shown_stage = step.stage
        at = _when(step.at)
        history.add_row(
            f"  {at:%Y-%m-%d %H:%M:%S}",
            f"+{(at - start).total_seconds():.1f} s",
            Text(str(step.stage)),
            Text(shown(step.detail or "")),
        )
    parts += [Text("history", style="bold"), history]
    if f.earlier_versions:
        parts.append(Text("earlier versions of this path (history, not failures)", style="bold"))
        parts += [
            Text(f"  {_when(v.at):%Y-%m-%d %H:%M:%S}  {v.stage}: {shown(v.reason or '')}")
            for v in f.earlier_versions
        ]
    if f.log:
        parts.append(Text(f"log ({shown(f.log)}), the last {LOG_TAIL_LINES} lines", style="bold"))
        parts += [Text(f"  {line}") for line in model.log_tail(Path(f.log), LOG_TAIL_LINES)]
    return Group(*parts)


def _when(iso: str) -> datetime:
    """A time of the JSON (UTC) in the local zone, for a person."""
    return datetime.fromisoformat(iso).astimezone()


def _input_text(i: model.Input) -> str:
    bits = [size_text(i.size)]
    if i.duration is not None:
        bits.append(clock_text(i.duration))
    if i.format:
        bits.append(i.format)
    if i.video_codec:
        picture = f" {i.width}x{i.height}" if i.width and i.height else ""
        bits.append(f"{i.video_codec}{picture}")
    if i.audio_codec:
        bits.append(i.audio_codec)
    return " · ".join(shown(b) for b in bits)


def _output_text(o: model.Output) -> str:
    if o.status == "failed":
        return shown(o.reason or "")
    bits = [shown(o.path or "")]
    if o.size is not None:
        bits.append(size_text(o.size))
    if o.duration is not None:
        bits.append(clock_text(o.duration))
    if o.width and o.height:
        bits.append(f"{o.width}x{o.height}")
    if o.vmaf is not None:
        bits.append(f"VMAF {o.vmaf:g}" + (f" at crf {o.crf:g}" if o.crf is not None else ""))
    if o.action == "remuxed":
        bits.append(f"remuxed: {shown(o.note or 'streams copied')}")
    return " · ".join(bits)


#: Lines of a file's log that ``status FILE`` shows (the whole log is in the file it names).
LOG_TAIL_LINES = 40


def _safe(text: str) -> str:
    """Text that is already ``shown``, made literal inside rich markup."""
    from rich.markup import escape

    return escape(text)


def _markup(markup: str) -> Text:
    """Our markup around escaped names; emoji codes (":smile:" in a name) stay as typed."""
    from rich.text import Text

    return Text.from_markup(markup, emoji=False)


# -- the journal: check, rebuild ------------------------------------------------------------------


@click.group("journal", cls=CommandGroup)
def journal_cmd() -> None:
    """Check the journal in --state-dir, or rebuild it from the output folders."""


@journal_cmd.command("check")
@config_option
@state_dir_option
@logging_options
def journal_check(logs: Logs, **params: Any) -> None:
    """Say whether the journal is sound (exit 0) or damaged, and how (exit 3)."""
    with errors():
        start_logging(logs)
        from .. import recovery

        path = settings_from(params).state_dir / JOURNAL_FILE
        problem = recovery.check(path)
    if problem is not None:
        click.echo(f"damaged {path}: {problem}")
        click.echo(f"mend it: autotranscode journal rebuild --state-dir {path.parent} --out OUT")
        sys.exit(EXIT_ERROR)
    click.echo(f"ok      {path}")


@journal_cmd.command("rebuild")
@click.option(
    "--out",
    "out_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="An output folder whose outputs are to count as done; repeatable.",
)
@click.option("--force", is_flag=True, help="Rebuild a journal that is not damaged.")
@config_option
@backend_option
@state_dir_option
@logging_options
def journal_rebuild(out_dirs: tuple[Path, ...], force: bool, logs: Logs, **params: Any) -> None:
    """Set a damaged journal aside (journal.db.damaged-TIME) and start a new one.

    The outputs found in each --out folder, by the stamps they carry, are recorded as
    done, so no later run transcodes their sources again. On the local backend, the
    objects the old journal's files left in the store are removed.
    """
    with errors():
        start_logging(logs)
        from .. import recovery

        s = settings_from(params)
        with client_lock(s.state_dir):
            backend = open_backend(s, create=False) if s.backend == "local" else None
            try:
                store = backend.store if backend is not None else None
                done = recovery.rebuild(
                    s.state_dir / JOURNAL_FILE, list(out_dirs), store, force, catalog=s.catalog
                )
            finally:
                if backend is not None:
                    backend.close()
    if done.moved_to is not None:
        click.echo(f"set aside {done.moved_to}")
    for output in done.recorded:
        click.echo(f"recorded {shown(str(output))}")
    click.echo(f"{len(done.recorded)} outputs recorded as done")
    if done.removed_objects:
        click.echo(f"{done.removed_objects} objects of the old journal removed from the store")
    if s.backend == "aws":
        click.echo(
            "note: objects of the old journal's files stay in the buckets until "
            "`autotranscode cleanup` removes them (after --older-than hours)",
            err=True,
        )
