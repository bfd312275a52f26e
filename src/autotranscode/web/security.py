"""Who may use the dashboard, and what a browser may do with its pages.

One ASGI middleware in front of every route, so that no endpoint can forget a check:

- **Token**: with a token set (always, when bound beyond loopback), a request carries it
  as ``Authorization: Bearer TOKEN`` or holds the session cookie that ``/login`` sets
  (HttpOnly, SameSite=Strict). Only the login page, the static files and ``/healthz``
  (a container's health check has no token) are open.
- **Host**: without a token, only loopback names are served: a page elsewhere cannot
  point a name of its own at 127.0.0.1 (DNS rebinding) and read the API through it.
- **CSRF**: a POST carries the page's CSRF token (``X-CSRF-Token`` header or a ``csrf``
  form field); a request with the bearer token needs none, since no browser adds that
  header to a forged request.
- **Headers**: a strict Content-Security-Policy (scripts and styles from the package
  only, never inline), no framing, no MIME sniffing, no referrer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The session cookie ``/login`` sets.
SESSION_COOKIE = "autotranscode_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
#: A form posted to the dashboard is a few fields; anything larger is not one of ours.
MAX_FORM_BYTES = 64 * 1024
#: Paths served without the token: what a login needs, and the health check.
OPEN_PATHS = ("/login", "/healthz")
OPEN_PREFIXES = ("/static/",)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """Whether a bind address (or a Host header's name) stays on this machine."""
    name = host.strip("[]")
    return name in LOOPBACK_HOSTS or name.startswith("127.")


def new_token() -> str:
    """A token for a dashboard bound beyond loopback when none was given."""
    return secrets.token_urlsafe(24)


class Keys:
    """The secrets of one dashboard: its token (or None: loopback only) and what is derived
    from it. Without a token the CSRF secret is random per process: pages of a previous
    process then need a reload, which is all it costs."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        secret = (token or secrets.token_urlsafe(32)).encode()
        self.session = _mac(secret, "session")
        self.csrf = _mac(secret, "csrf")

    def bearer_ok(self, header: str | None) -> bool:
        if self.token is None or not header or not header.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    def token_ok(self, token: str) -> bool:
        return self.token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def session_ok(self, cookie: str | None) -> bool:
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.session.encode())

    def csrf_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())


def _mac(secret: bytes, purpose: str) -> str:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).hexdigest()


class Guard:
    """The middleware: host, token and CSRF checks, then the security headers on every
    response (errors included)."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        headers = _headers(scope)
        path: str = scope["path"]
        if self.keys.token is None and not is_loopback(_host_name(headers.get("host", ""))):
            await _refuse(send_with_headers, 403, "this dashboard answers to loopback names only")
            return
        bearer = self.keys.bearer_ok(headers.get("authorization"))
        opened = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if (
            self.keys.token is not None
            and not opened
            and not bearer
            and not self.keys.session_ok(_cookie(headers, SESSION_COOKIE))
        ):
            await _unauthorized(scope, send_with_headers, path)
            return
        if scope["method"] == "POST" and not bearer:
            if self.keys.csrf_ok(headers.get(CSRF_HEADER)):
                pass
            elif headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                body = await _read_form(receive)
                if body is None:
                    await _refuse(send_with_headers, 413, "form too large")
                    return
                fields = parse_qs(body.decode("latin-1"))
                if not self.keys.csrf_ok(next(iter(fields.get(CSRF_FIELD, [])), None)):
                    await _refuse(send_with_headers, 403, "missing or wrong CSRF token")
                    return
                receive = _replay(body)
            else:
                await _refuse(send_with_headers, 403, "missing or wrong CSRF token")
                return
        await self.app(scope, receive, send_with_headers)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _read_form(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body", False):
            return body


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the app the body the middleware has read already."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorized(scope: Scope, send: Send, path: str) -> None:
    """A page asked for without a session goes to the login form; anything else is a 401."""
    accept = _headers(scope).get("accept", "")
    if scope["method"] == "GET" and not path.startswith("/api/") and "text/html" in accept:
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        location = f"/login?next={quote(target, safe='')}".encode()
        await send(
            {"type": "http.response.start", "status": 303, "headers": [(b"location", location)]}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"error": "a token is required (Authorization: Bearer TOKEN)"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="autotranscode"'),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
