"""The states a file goes through and the moves between them (the journal's), and the one
vocabulary a person is told: what a file is doing, how it ended, how each output ended.

Logs, ``status`` and its JSON, the live display, notifications' readers and the web pages
all use these words; the journal's own states (``journal.FileState``) stay inside it and
map onto them (``journal.STAGES``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class FileState(StrEnum):
    DISCOVERED = "DISCOVERED"
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    SUBMITTED = "SUBMITTED"
    TRANSCODING = "TRANSCODING"
    COMPLETED = "COMPLETED"
    DOWNLOADING = "DOWNLOADING"
    DONE = "DONE"
    CLEANED = "CLEANED"
    FAILED = "FAILED"
    #: Not taken, and not a failure: not a regular file (a FIFO, a socket, a device, a
    #: dangling link), or a failed partial version superseded by a later one of its path.
    SKIPPED = "SKIPPED"

    @property
    def finished(self) -> bool:
        return self in FINISHED


#: The states of a file that goes well, in order, after DISCOVERED.
HAPPY_PATH = (
    FileState.UPLOADING,
    FileState.UPLOADED,
    FileState.SUBMITTED,
    FileState.TRANSCODING,
    FileState.COMPLETED,
    FileState.DOWNLOADING,
    FileState.DONE,
    FileState.CLEANED,
)
FINISHED = frozenset({FileState.CLEANED, FileState.FAILED, FileState.SKIPPED})


class Stage(StrEnum):
    """The one vocabulary a person and a program are told: what a file is doing, or how it
    ended. Logs, ``status`` (and its JSON), the live display and the web pages use these
    words; several journal states are one stage (``STAGES``), and the journal's own states
    stay inside it."""

    COPYING_IN = "copying in"
    QUEUED = "queued"
    UPLOADING = "uploading"
    WAITING = "waiting for a worker"
    TRANSCODING = "transcoding"
    DOWNLOADING = "downloading"
    DONE = "done"
    #: Some outputs delivered, others could not be made (each output has its outcome).
    PARTLY_DONE = "partly done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def measured(self) -> bool:
        """A stage with a percent (and a bar that fills)."""
        return self in (Stage.UPLOADING, Stage.TRANSCODING, Stage.DOWNLOADING)

    @property
    def waiting(self) -> bool:
        """Not started yet: counted as queued, not in flight."""
        return self in (Stage.COPYING_IN, Stage.QUEUED)

    @property
    def finished(self) -> bool:
        return self in (Stage.DONE, Stage.PARTLY_DONE, Stage.FAILED, Stage.SKIPPED)


class OutputStatus(StrEnum):
    """How one output of a file ended: a file is "partly done" when some are DONE and
    others FAILED."""

    DONE = "done"
    FAILED = "failed"


#: How a made output was made: encoded, or its source's streams copied (``media.remux``).
OutputAction = Literal["encoded", "remuxed"]
OUTPUT_ACTIONS: tuple[OutputAction, ...] = ("encoded", "remuxed")


#: Each journal state's stage. DONE (outputs placed, the source not yet handled) is the
#: tail of downloading. CLEANED is "done", or "partly done" when an output failed
#: (``stage_of``).
STAGES: dict[FileState, Stage] = {
    FileState.DISCOVERED: Stage.QUEUED,
    FileState.UPLOADING: Stage.UPLOADING,
    FileState.UPLOADED: Stage.WAITING,
    FileState.SUBMITTED: Stage.WAITING,
    FileState.TRANSCODING: Stage.TRANSCODING,
    FileState.COMPLETED: Stage.DOWNLOADING,
    FileState.DOWNLOADING: Stage.DOWNLOADING,
    FileState.DONE: Stage.DOWNLOADING,
    FileState.CLEANED: Stage.DONE,
    FileState.FAILED: Stage.FAILED,
    FileState.SKIPPED: Stage.SKIPPED,
}


_S = FileState
#: Where a job lost on its way (no worker answers it, or its output is gone) starts again:
#: submitted anew from its stored input, uploaded again, or (no input key yet) taken again.
_RESUBMITTED = {_S.UPLOADED, _S.UPLOADING, _S.DISCOVERED}
#: Every way out of an unfinished state that does not depend on which one it is: failed
#: (or SKIPPED, superseded by a later version of its path), or ``retry`` of a stuck file,
#: which takes it again from its upload under the job id it has.
_ANY_STEP = {_S.FAILED, _S.SKIPPED, _S.UPLOADING}
#: Every state change the journal accepts: state -> the states it may go to. A step that
#: records a fact without moving on (the output names, a copy placed) goes to its own state.
TRANSITIONS: dict[FileState, frozenset[FileState]] = {
    # Taken (→ UPLOADING); or, its content known already: uploaded, delivered before
    # (DONE, CLEANED; ``journal rebuild`` records what OUT holds so too); SKIPPED: not taken;
    # DISCOVERED: ``retry`` of a file stuck before it had a job id.
    _S.DISCOVERED: frozenset({_S.UPLOADED, _S.DONE, _S.CLEANED, _S.DISCOVERED, *_ANY_STEP}),
    # Taken again (it changed); stored (→ UPLOADED); or done without a transcode of its own:
    # a copy of another file's outputs (DONE), or already in OUT (CLEANED); DISCOVERED: as
    # above, a stuck file with no job id (a journal from an older release).
    _S.UPLOADING: frozenset({_S.UPLOADED, _S.DONE, _S.CLEANED, _S.DISCOVERED, *_ANY_STEP}),
    # Submitted; the job's notices can come before ``submit`` returns (TRANSCODING, COMPLETED).
    _S.UPLOADED: frozenset({_S.UPLOADED, _S.SUBMITTED, _S.TRANSCODING, _S.COMPLETED, *_ANY_STEP}),
    _S.SUBMITTED: frozenset({_S.TRANSCODING, _S.COMPLETED, *_RESUBMITTED, *_ANY_STEP}),
    _S.TRANSCODING: frozenset({_S.COMPLETED, *_RESUBMITTED, *_ANY_STEP}),
    # Downloading; DONE at once when every output was placed before a crash.
    _S.COMPLETED: frozenset({_S.DOWNLOADING, _S.DONE, *_RESUBMITTED, *_ANY_STEP}),
    _S.DOWNLOADING: frozenset({_S.DOWNLOADING, _S.DONE, *_RESUBMITTED, *_ANY_STEP}),
    _S.DONE: frozenset({_S.CLEANED, *_ANY_STEP}),
    _S.CLEANED: frozenset(),
    # ``retry`` starts it over (reset); a later version of its path supersedes it (SKIPPED);
    # failed again with a new reason (an unreadable file that still is).
    _S.FAILED: frozenset({_S.DISCOVERED, _S.SKIPPED, _S.FAILED}),
    _S.SKIPPED: frozenset(),
}
