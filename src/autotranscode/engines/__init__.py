"""Engines: who does the transcoding (our workers, or AWS Elemental MediaConvert)."""

from __future__ import annotations

from .base import Engine
from .workers import WorkersEngine

__all__ = ["Engine", "WorkersEngine"]
