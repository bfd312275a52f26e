"""Every error autotranscode raises on purpose.

    AutotranscodeError
    ├── ConfigError          bad option, config file or environment value
    ├── MediaError           the input or output media is not what we need
    │   ├── ProbeError       the file cannot be read as media
    │   └── TranscodeError   ffmpeg failed, or its output failed the check
    │       ├── FfmpegKilled ffmpeg died of a signal (OOM killer, segfault): retried
    │       └── JoinError    a chunked file's joined output failed its check
    ├── BackendError         storage or queues misbehaved (S3/SQS/SNS or the local store)
    │   ├── StorageError     an object could not be stored, fetched or deleted
    │   └── QueueError       a message could not be sent, received or deleted
    ├── MessageError         a queue message is malformed or not ours: rejected, never acted on
    ├── OutputError          the output folder cannot take the result (retried: disk full passes)
    │   └── UnsafeFolder     a folder on the way is a symlink or no folder: never written through
    └── JournalError         the journal in the state dir cannot be read or written

Each class says whether trying the same step again can succeed (``retryable``): the
pipeline and the workers both ask it, so one policy decides what is retried (a later,
scheduled attempt) and what fails at once (with its reason).

Errors from boto3, ffmpeg and the filesystem become these at the boundary
(``raise ... from exc``) so callers handle one tree, and each message says what
happened and what the user can do about it.
"""

from __future__ import annotations


class AutotranscodeError(Exception):
    """Root of every error autotranscode raises on purpose."""

    #: Unless a class says otherwise, trying again would fail the same way.
    retryable: bool = False


class ConfigError(AutotranscodeError):
    """An option, config file entry or environment variable is invalid."""

    #: A wrong setting stays wrong until the user changes it.
    retryable: bool = False


class MediaError(AutotranscodeError):
    """The media is unusable; retrying the same file will fail the same way."""

    #: The same bytes give the same result.
    retryable: bool = False


class ProbeError(MediaError):
    """The file cannot be opened as audio or video."""


class TranscodeError(MediaError):
    """ffmpeg failed on the input, or produced an output that fails the check.

    When ffmpeg ran, ``command`` (its command line) and ``stderr`` (the bounded tail of what
    it said) come with the error, for the file's log: the message holds one line of it.
    """

    def __init__(
        self, message: str, *, command: str | None = None, stderr: str | None = None
    ) -> None:
        super().__init__(message)
        self.command = command
        self.stderr = stderr


class FfmpegKilled(TranscodeError):
    """ffmpeg was killed by a signal: the OOM killer, a segfault, someone's ``kill``.

    Not the media's fault for sure, nor surely not: it counts as an attempt and is tried
    again, up to the job's attempts, then the job is dead-lettered with this reason.
    """

    retryable: bool = True


class JoinError(TranscodeError):
    """The chunks of a file, joined, are not the file an encode of it would be: frames lost
    or doubled, a duration or the sound out of step, timestamps that go back.

    ``bad_chunk``: the chunk whose part of the join is wrong, when it can be told; that
    chunk is to be encoded again (the same join would fail the same way: not retryable).
    """

    def __init__(
        self,
        message: str,
        *,
        bad_chunk: int | None = None,
        command: str | None = None,
        stderr: str | None = None,
    ) -> None:
        super().__init__(message, command=command, stderr=stderr)
        self.bad_chunk = bad_chunk


class BackendError(AutotranscodeError):
    """Storage or a queue failed; usually transient, so the step can be retried."""

    #: Endpoints come back, throttling passes.
    retryable: bool = True


class StorageError(BackendError):
    """An object could not be stored, fetched or deleted."""


class ObjectMissing(StorageError):
    """The object does not exist: cleaned up, expired, or never stored."""

    #: Trying again cannot bring the object back; the step before it must be redone.
    retryable: bool = False


class PlanError(StorageError):
    """A chunked job's stored plan is unreadable or not one a split makes (damaged, forged)."""

    #: The same bytes are read again: the file fails at once, with the plan's fault.
    retryable: bool = False


class QueueError(BackendError):
    """A message could not be sent, received or deleted."""


class MessageError(AutotranscodeError):
    """A message from a queue is malformed or not addressed to us."""

    #: The same message is malformed every time.
    retryable: bool = False


class OutputError(AutotranscodeError):
    """The output folder cannot receive the result (permissions, disk full)."""

    #: Disk full and permissions pass once the user frees space or fixes them.
    retryable: bool = True


class UnsafeFolder(OutputError):
    """A folder an output would go through (OUT's subfolder, for a tree) is a symlink or no
    folder: written through, an output could land outside OUT."""

    #: Someone put it there: a person decides (``retry`` once it is a folder again).
    retryable: bool = False


class JournalError(AutotranscodeError):
    """The journal cannot be read or written (disk full, permissions, a damaged file)."""

    #: A full disk or a lock held by another process passes.
    retryable: bool = True
