"""``--dry-run`` in place: each file's line and the sum, as ``library`` would act."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from ..library import kept_before, size_text
from ..media import presets
from ..plan import Planned, plan
from ..settings import Settings
from ..text import shown


def show_plan(found: list[tuple[Path, Path]], s: Settings) -> list[Planned]:
    """Print what would be done to each file (by its path under the folder given) and the
    space it would save; nothing is written."""
    preset = s.catalog.get(s.preset[0])
    kept = kept_before(s.state_dir)
    planned = plan([p for p, _ in found], preset, presets.digest(preset), s.replace, kept)
    for item, (path, under) in zip(planned, found, strict=True):
        name = shown(str(path.relative_to(under)) if path.is_relative_to(under) else str(path))
        sizes = size_text(item.size)
        if item.estimate is not None:
            sizes += f" -> ~{size_text(item.estimate)}"
        click.echo(f"{item.action:<7} {name}  {sizes}  ({shown(item.detail)})")
    counts = Counter(item.action for item in planned)
    total = sum(item.size for item in planned if item.action == "encode")
    saving = sum(item.saving for item in planned)
    listed = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "no files"
    click.echo(
        f"{listed}; would save about {size_text(saving)} of {size_text(total)} "
        f"with {preset.id} (an estimate, see README: Converting a library); dry run, "
        "nothing written"
    )
    return planned
