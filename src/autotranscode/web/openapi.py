"""The API's OpenAPI 3.1 description, written by hand; its models are the ``status``
model's own JSON Schema (the one ``status --json`` follows), so they cannot drift."""

from __future__ import annotations

from typing import Any

import msgspec

from .. import __version__, status
from ..stages import Stage
from ..waiting import QueueView
from .views import HistoryPage, PresetInfo, WorkersView

_REF = "#/components/schemas/{name}"


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name=ref)}}},
    }


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


_FID = {"name": "fid", "in": "path", "required": True, "schema": {"type": "string"}}
_CSRF = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "Needed without the bearer token (from /api/session or a page).",
    "schema": {"type": "string"},
}


def openapi() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components(
        [status.Report, status.FileStatus, HistoryPage, PresetInfo, QueueView, WorkersView],
        ref_template=_REF,
    )
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    }
    stage = {"type": "string", "enum": [s.value for s in Stage]}
    paths: dict[str, Any] = {
        "/api/status": {
            "get": {
                "summary": "What `status --json` says: totals, files in flight, recent files.",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 10}},
                    {"name": "stage", "in": "query", "schema": stage},
                ],
                "responses": {"200": _json("Report", "The report.")},
            }
        },
        "/api/files": {
            "get": {
                "summary": "History: files newest first, searched by name, filtered by stage.",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "stage", "in": "query", "schema": stage},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": _json("HistoryPage", "One page of files.")},
            }
        },
        "/api/files/{fid}": {
            "get": {
                "summary": "One file's whole story.",
                "parameters": [_FID],
                "responses": {
                    "200": _json("FileStatus", "The file."),
                    "404": _error("No such file."),
                },
            }
        },
        "/api/files/{fid}/retry": {
            "post": {
                "summary": "Try a failed or partly done file again (as `autotranscode retry`); "
                "answers the id of the record to follow.",
                "parameters": [_FID, _CSRF],
                "responses": {
                    "200": {"description": "Handed back to the pipeline."},
                    "403": _error("Missing CSRF token."),
                    "404": _error("No such file."),
                    "409": _error("The file is neither failed nor partly done."),
                },
            }
        },
        "/api/queue": {
            "get": {
                "summary": "What waits, the next first (the job queue's order where it has one).",
                "responses": {"200": _json("QueueView", "The queue.")},
            }
        },
        "/api/queue/{fid}/{action}": {
            "post": {
                "summary": "`cancel`: end a waiting or transcoding file as failed, reason "
                "`cancelled`, its objects and job message cleaned up; `front`: make its job "
                "the next one taken (a queue that keeps an order: local).",
                "parameters": [
                    _FID,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["cancel", "front"]},
                    },
                    _CSRF,
                ],
                "responses": {
                    "200": {"description": "Done."},
                    "403": _error("Missing CSRF token."),
                    "404": _error("No such file or action."),
                    "409": _error("Refused: finished, being transferred, or taken already."),
                },
            }
        },
        "/api/workers": {
            "get": {
                "summary": "Workers alive (heartbeats), the job queue's depth, throughput.",
                "responses": {"200": _json("WorkersView", "The workers.")},
            }
        },
        "/api/presets": {
            "get": {
                "summary": "The presets and the exact ffmpeg command each runs.",
                "responses": {
                    "200": {
                        "description": "The catalog.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": _REF.format(name="PresetInfo")},
                                }
                            }
                        },
                    }
                },
            }
        },
        "/api/upload": {
            "post": {
                "summary": "Stream a file into DROP (`run --web` only).",
                "parameters": [
                    {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}},
                    _CSRF,
                ],
                "requestBody": {
                    "content": {"application/octet-stream": {"schema": {"type": "string"}}}
                },
                "responses": {
                    "201": {"description": "In DROP, whole."},
                    "400": _error("A name that is no plain file name."),
                    "409": _error("The name is taken in DROP."),
                    "413": _error("Over the upload limit."),
                },
            }
        },
        "/api/events": {
            "get": {
                "summary": "Server-Sent Events: `status` events with totals and in-flight files.",
                "responses": {"200": {"description": "text/event-stream"}},
            }
        },
        "/api/session": {
            "get": {"summary": "The CSRF token.", "responses": {"200": {"description": "JSON"}}}
        },
        "/healthz": {
            "get": {
                "summary": "Journal readable and writable, disk space; no token needed.",
                "responses": {"200": {"description": "ok"}, "503": {"description": "not ok"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text format.",
                "responses": {"200": {"description": "text/plain"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "autotranscode dashboard", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }
