"""What the state dir's journal says: ``status`` (human, --json, --watch), and
``journal check|rebuild`` for when the journal itself is damaged."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..deploy import open_backend
from ..journal import FileState, Journal
from ..service import JOURNAL_FILE, client_lock, usable_state_dir
from ..text import shown
from .options import EXIT_ERROR, Stopper, common_options, errors, ops_logging, settings_from

if TYPE_CHECKING:  # rich loads only for a table
    from rich.console import Group


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=10, show_default=True, help="Recent and failed files to list.")
@click.option("--watch", is_flag=True, help="Follow a running pipeline until Ctrl+C.")
@common_options
def status(as_json: bool, limit: int, watch: bool, verbose: int, **params: Any) -> None:
    """Files per state, what is in flight, and the failed ones with their reason."""
    with errors():
        s = settings_from(params)
        journal = Journal(usable_state_dir(s.state_dir) / JOURNAL_FILE)
        try:
            journal.supersede_failed()  # what a journal written by an older version may hold
            if as_json:
                click.echo(json.dumps(_status_data(journal, limit), indent=2, ensure_ascii=False))
            elif watch:
                _watch(journal, limit)
            else:
                from rich.console import Console

                Console().print(_status_view(journal, limit))
        finally:
            journal.close()


def _watch(journal: Journal, limit: int) -> None:
    """Redraw in place on a terminal; elsewhere print each view that differs from the last."""
    stopper = Stopper(quiet=True)
    from rich.console import Console
    from rich.live import Live

    stopper.install()
    console = Console()
    if console.is_terminal:
        with Live(_status_view(journal, limit), console=console, refresh_per_second=2) as live:
            while not stopper.event.wait(0.5):
                live.update(_status_view(journal, limit))
        return
    last = None
    while True:
        with console.capture() as capture:
            console.print(_status_view(journal, limit))
        text = capture.get()
        if text != last:
            click.echo(f"--- {time.strftime('%H:%M:%S')}\n{text}", nl=False)
            last = text
        if stopper.event.wait(1.0):
            return


def _status_data(journal: Journal, limit: int) -> dict[str, Any]:
    return {
        "counts": {k.value: v for k, v in journal.counts().items()},
        "in_flight": [
            {"path": shown(str(r.path)), "state": r.state.value} for r in journal.unfinished()
        ],
        "failed": [
            {"path": shown(str(r.path)), "reason": r.reason}
            for r in journal.recent(limit, FileState.FAILED)
        ],
        "skipped": [
            {"path": shown(str(r.path)), "reason": r.reason}
            for r in journal.recent(limit, FileState.SKIPPED)
        ],
        "recent": [
            {
                "path": shown(str(r.path)),
                "state": r.state.value,
                "outputs": list(r.outputs.values()),
                "warning": r.warning,
                **({"detail": f"same content as {shown(r.same_as)}"} if r.same_as else {}),
            }
            for r in journal.recent(limit)
        ],
    }


def _status_view(journal: Journal, limit: int) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = journal.counts()
    if not counts:
        return Group("no files yet")
    table = Table("state", "files", box=None)
    for state in FileState:
        if counts.get(state):
            table.add_row(state.value.lower(), str(counts[state]))
    parts: list[Any] = [table]
    now = time.time()
    busy = journal.unfinished()
    if busy:
        flight = Table("in flight", "step", "for", box=None, title_justify="left")
        for r in busy[:limit]:
            flight.add_row(r.name, r.state.value.lower(), f"{now - r.updated_at:.0f}s")
        parts += ["", flight]
    copied = [r for r in journal.recent(limit, FileState.CLEANED) if r.same_as]
    if copied:
        parts += ["", Text("done without a transcode of their own", style="bold")]
        parts += [
            Text(f"  {shown(r.name)}: done (same content as {shown(r.same_as or '')})")
            for r in copied
        ]
    failed = journal.recent(limit, FileState.FAILED)
    if failed:
        parts += ["", Text("failed", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.reason}") for r in failed]
    warned = [r for r in journal.recent(limit, FileState.CLEANED) if r.warning]
    if warned:
        parts += ["", Text("done, with a warning", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.warning}") for r in warned]
    skipped = journal.recent(limit, FileState.SKIPPED)
    if skipped:
        parts += ["", Text("skipped", style="bold")]
        parts += [Text(f"  {shown(str(r.path))}: {r.reason}") for r in skipped]
    return Group(*parts)


# -- the journal: check, rebuild ------------------------------------------------------------------


@click.group("journal")
def journal_cmd() -> None:
    """Check the journal in --state-dir, or rebuild it from the output folders."""


@journal_cmd.command("check")
@common_options
def journal_check(verbose: int, **params: Any) -> None:
    """Say whether the journal is sound (exit 0) or damaged, and how (exit 3)."""
    ops_logging(verbose)
    with errors():
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
@common_options
def journal_rebuild(out_dirs: tuple[Path, ...], force: bool, verbose: int, **params: Any) -> None:
    """Set a damaged journal aside (journal.db.damaged-TIME) and start a new one.

    The outputs found in each --out folder, by the stamps they carry, are recorded as
    done, so no later run transcodes their sources again. On the local backend, the
    objects the old journal's files left in the store are removed.
    """
    ops_logging(verbose)
    with errors():
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
