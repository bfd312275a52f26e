"""autotranscode: turn a folder into a media transcoding pipeline on S3, SQS and SNS."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autotranscode")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
