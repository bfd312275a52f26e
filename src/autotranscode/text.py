"""Names and reasons as a person sees them: one printable line, whatever bytes they hold.

A file name can hold anything but ``/`` and NUL: newlines, ESC sequences that a
terminal obeys, bytes that are not UTF-8. Everything we print or log about a file goes
through ``shown`` first, so that a name can neither break a line nor drive the terminal.
Its own module so the CLI and the progress displays share it without importing each other.
"""

from __future__ import annotations

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(name: str) -> str:
    """A file name as one printable line: bytes that are not UTF-8 as \\xNN, controls as \\n."""
    name = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), name)
