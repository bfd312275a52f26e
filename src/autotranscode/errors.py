"""Every error autotranscode raises on purpose.

    AutotranscodeError
    ├── ConfigError          bad option, config file or environment value
    ├── MediaError           the input or output media is not what we need
    │   ├── ProbeError       the file cannot be read as media
    │   └── TranscodeError   ffmpeg failed, or its output failed the check
    ├── BackendError         storage or queues misbehaved (S3/SQS/SNS or the local store)
    │   ├── StorageError     an object could not be stored, fetched or deleted
    │   └── QueueError       a message could not be sent, received or deleted
    ├── MessageError         a queue message is malformed or not ours: rejected, never acted on
    ├── OutputError          the output folder cannot take the result (retried: disk full passes)
    └── JournalError         the journal in the state dir cannot be read or written

Errors from boto3, ffmpeg and the filesystem become these at the boundary
(``raise ... from exc``) so callers handle one tree, and each message says what
happened and what the user can do about it.
"""

from __future__ import annotations


class AutotranscodeError(Exception):
    """Root of every error autotranscode raises on purpose."""


class ConfigError(AutotranscodeError):
    """An option, config file entry or environment variable is invalid."""


class MediaError(AutotranscodeError):
    """The media is unusable; retrying the same file will fail the same way."""


class ProbeError(MediaError):
    """The file cannot be opened as audio or video."""


class TranscodeError(MediaError):
    """ffmpeg failed on the input, or produced an output that fails the check."""


class BackendError(AutotranscodeError):
    """Storage or a queue failed; usually transient, so the step can be retried."""


class StorageError(BackendError):
    """An object could not be stored, fetched or deleted."""


class ObjectMissing(StorageError):
    """The object does not exist: cleaned up, expired, or never stored."""


class QueueError(BackendError):
    """A message could not be sent, received or deleted."""


class MessageError(AutotranscodeError):
    """A message from a queue is malformed or not addressed to us."""


class OutputError(AutotranscodeError):
    """The output folder cannot receive the result (permissions, disk full)."""


class JournalError(AutotranscodeError):
    """The journal cannot be read or written (disk full, permissions, a damaged file)."""
