"""Deliver evidence: upload clips and report incidents over HTTP, with bounded retries.

The API contract (URLs, URL template, header) is configuration; nothing here names a
real endpoint. The API key comes from the environment and never appears in a log line,
an exception message or a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from vizoflow.clock import SiteClock
from vizoflow.errors import UploadError
from vizoflow.evidence.outbox import LOCAL

log = logging.getLogger(__name__)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class PermanentError(UploadError):
    """The server refused for a reason a retry will not fix (4xx other than 408/429)."""


class TransientError(UploadError):
    """Connection error, timeout, 5xx, 408 or 429: worth trying again later."""


def safe_filename(name: object) -> str:
    """Return ``name`` if it is a plain file name; raise :class:`PermanentError` otherwise.

    The server's answer decides where evidence points, so it is not trusted: no path
    separators, no ``..``, no control characters, no leading dot.
    """
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise PermanentError(f"upload answer has an unsafe or missing filename: {str(name)[:80]!r}")
    return name


def endpoint_name(url: str | None) -> str:
    """How the outbox names a destination: ``local`` without a URL, else the URL without
    credentials, query or fragment (so no secret a URL might carry is stored or logged).

    Two URLs naming the same endpoint compare equal, which is what "never report one
    incident twice to the same endpoint" is checked against.
    """
    if not url:
        return LOCAL
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host.lower(), parts.path, "", ""))


FAILURE_WORDS = frozenset({"error", "err", "fail", "failed", "failure", "false", "ko", "no", "0"})
SUCCESS_WORDS = frozenset({"true", "ok", "success", "succeeded", "yes", "1"})


def _says_yes(value: object) -> bool:
    """A success field's value read as yes/no (``true``, ``1``, ``"ok"``, ``"success"`` are yes)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in SUCCESS_WORDS
    return False


def _server_message(answer: dict[str, Any]) -> str:
    for key in ("message", "msg", "error", "detail", "errors"):
        if answer.get(key):
            return f": {str(answer[key])[:120]!r}"
    return ""


def reply_failure(answer: Any) -> str | None:
    """Why a parsed 2xx JSON answer says the request failed, or None if it does not.

    The answer must be a JSON object. It fails when it carries the API's own verdict
    and that verdict is no: ``success`` or ``ok`` not true (``false``, ``0``, ``"false"``,
    ``null``); ``status`` false, a failure word (``"error"``, ``"fail"``, ``"failed"``,
    ...) or a number >= 400; or, with no ``success``/``ok``/``status`` field, a non-empty
    ``error``. An object with none of these fields (``{}``, ``{"id": 7}``) is success:
    not every endpoint has a verdict field.
    """
    if not isinstance(answer, dict):
        return f"answer is JSON but not an object: {json.dumps(answer)[:80]}"
    for key in ("success", "ok"):
        if key in answer and not _says_yes(answer[key]):
            return f"the server says {key}={json.dumps(answer[key])}{_server_message(answer)}"
    status = answer.get("status")
    if (status is False or (isinstance(status, (int, float)) and not isinstance(status, bool) and status >= 400)
            or (isinstance(status, str) and status.strip().lower() in FAILURE_WORDS)):
        return f"the server says status={json.dumps(status)}{_server_message(answer)}"
    if not any(key in answer for key in ("success", "ok", "status")) and answer.get("error"):
        return f"the server answers an error{_server_message(answer)}"
    return None


def check_reply(response: requests.Response, url: str, empty_ok: bool = False) -> dict[str, Any]:
    """Decide whether a 2xx answer is a success; return its JSON object.

    Success is: a 2xx status (checked by :class:`HttpClient`), **and** a body that
    parses as a JSON object (the ``Content-Type`` is not trusted either way), **and**
    no failure verdict in it (:func:`reply_failure`). With ``empty_ok``, a ``204 No
    Content`` (or any 2xx with an empty body) is a success too, answering ``{}``.

    Raises:
        TransientError: the body is not JSON (an HTML error page from a proxy, a
            captive portal or a maintenance page, a cut-off body): tried again later.
        PermanentError: the JSON says the request failed (``success: false`` ...):
            parked as ``failed`` with the server's message, for a person to look at.
    """
    body = response.content or b""
    if not body.strip():
        if empty_ok:
            return {}
        raise TransientError(f"POST {url}: HTTP {response.status_code} with an empty answer (expected JSON)")
    try:
        answer = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise TransientError(f"POST {url}: HTTP {response.status_code} answer is not JSON ({kind}): "
                             f"{response.text[:80]!r}") from None
    failure = reply_failure(answer)
    if failure is not None:
        if not isinstance(answer, dict):
            raise TransientError(f"POST {url}: {failure}")
        raise PermanentError(f"POST {url}: HTTP {response.status_code} but {failure}")
    return answer


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before giving the item back to the outbox.

    Args:
        attempts: Tries per request (3 by default).
        backoff: First wait in seconds; doubles each time.
        max_wait: Cap for any wait, including a server's ``Retry-After``.
    """

    attempts: int = 3
    backoff: float = 1.0
    max_wait: float = 30.0


class HttpClient:
    """POST with the API key header, retries on transient failures, and clear errors.

    Args:
        api_key: Sent as ``X-API-Key``; None sends no key.
        policy: Retry policy.
        sleep: Injected for tests; ``time.sleep`` by default.
    """

    def __init__(self, api_key: str | None, policy: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._session = requests.Session()
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self.policy = policy
        self._sleep = sleep

    def post(self, url: str, timeout: float, **kwargs: Any) -> requests.Response:
        """POST, retrying transient failures; return the 2xx response.

        Raises:
            PermanentError: 4xx other than 408/429 (not retried).
            TransientError: still failing after ``policy.attempts`` tries.
        """
        error = ""
        for attempt in range(1, self.policy.attempts + 1):
            rewind = kwargs.get("files")
            if rewind:
                for _, (_, fh, _) in rewind.items():
                    fh.seek(0)
            wait = self.policy.backoff * 2 ** (attempt - 1)
            try:
                response = self._session.post(url, headers=self._headers, timeout=timeout, **kwargs)
            except requests.Timeout:
                error = f"POST {url}: timed out after {timeout:.0f} s"
            except requests.ConnectionError as exc:
                error = f"POST {url}: connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                error = f"POST {url}: HTTP {status} {response.reason}"
                if status == 429:
                    wait = _retry_after(response, wait)
                elif 400 <= status < 500 and status != 408:
                    hint = " (check VIZO_API_KEY)" if status in (401, 403) else ""
                    raise PermanentError(error + hint)
            log.warning("%s (attempt %d of %d)", error, attempt, self.policy.attempts)
            if attempt < self.policy.attempts:
                self._sleep(min(wait, self.policy.max_wait))
        raise TransientError(error)


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


@dataclass(frozen=True)
class Stored:
    """Where an uploaded clip now lives."""

    uploaded_filename: str
    video_url: str
    upload_timestamp: str


class Uploader:
    """Multipart upload of a clip; reads the stored filename from the JSON answer.

    Args:
        client: HTTP client carrying the key and retry policy.
        url: Upload endpoint.
        video_url_template: Public URL of a stored file, ``{filename}`` filled in.
        field: Multipart field name of the file.
        timeout_base: Seconds allowed for any upload ...
        timeout_per_mb: ... plus this per MiB of clip (slow uplinks in stores).
        clock: The site's clock: ``upload_timestamp`` is its local wall time.
    """

    def __init__(self, client: HttpClient, url: str, video_url_template: str, field: str = "file",
                 timeout_base: float = 10.0, timeout_per_mb: float = 5.0, clock: SiteClock | None = None) -> None:
        self.clock = clock or SiteClock()
        if "{filename}" not in video_url_template:
            raise ValueError(f"video_url_template must contain {{filename}}, got {video_url_template!r}")
        self.client, self.url, self.template, self.field = client, url, video_url_template, field
        self.timeout_base, self.timeout_per_mb = timeout_base, timeout_per_mb
        self.destination = endpoint_name(url)  # what the outbox records as ``uploaded_to``

    def timeout_for(self, size: int) -> float:
        """Seconds allowed for a file of ``size`` bytes."""
        return self.timeout_base + self.timeout_per_mb * size / 2**20

    def upload(self, path: Path) -> Stored:
        """Upload ``path``.

        Success is a 2xx answer with a JSON object that does not say it failed (see
        :func:`check_reply`; an empty answer or a 204 is not a success here: the
        stored file name is needed) and carries a safe ``filename`` (or ``data.filename``).

        Raises:
            PermanentError: missing file, refused, a JSON answer saying failure, or an
                answer without a safe filename.
            TransientError: the server could not be reached or kept failing, or its
                answer is not JSON (e.g. an HTML error page with status 200).
        """
        if not path.is_file():
            raise PermanentError(f"clip to upload is missing: {path}")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            response = self.client.post(self.url, timeout=self.timeout_for(size),
                                        files={self.field: (path.name, fh, "video/mp4")})
        answer = check_reply(response, self.url)  # JSON object without a failure verdict, else raises
        name = answer.get("filename")
        if name is None and isinstance(answer.get("data"), dict):
            name = answer["data"].get("filename")
        filename = safe_filename(name)
        return Stored(filename, self.template.format(filename=filename), self.clock.wall(self.clock.now()))


class LocalStore:
    """Evidence that stays on this machine (no upload URL configured): a ``file://`` URL."""

    destination = LOCAL

    def __init__(self, clock: SiteClock | None = None) -> None:
        self.clock = clock or SiteClock()

    def upload(self, path: Path) -> Stored:
        """Point at the local clip instead of uploading it."""
        if not path.is_file():
            raise PermanentError(f"clip is missing: {path}")
        return Stored(path.name, path.resolve().as_uri(), self.clock.wall(self.clock.now()))


class IncidentReporter:
    """POST the incident JSON.

    Args:
        client: HTTP client carrying the key and retry policy.
        url: Incident endpoint; None writes incidents to ``local_log`` instead.
        local_log: JSON-lines file of incidents when there is no endpoint.
        timeout: Seconds per request.
    """

    def __init__(self, client: HttpClient | None, url: str | None, local_log: Path | None = None, timeout: float = 15.0) -> None:
        self.client, self.url, self.local_log, self.timeout = client, url, local_log, timeout
        self.destination = endpoint_name(url if client is not None else None)  # recorded in ``reported_to``

    def report(self, payload: dict[str, Any]) -> None:
        """Deliver one incident; returns only if the incident API accepted it.

        Accepted means (:func:`check_reply`): a 2xx status, and a body that is a JSON
        object whose own verdict (``success``, ``ok``, ``status``, ``error``) does not
        say failure, e.g. ``{"success": true}``, ``{"status": "ok"}`` or ``{}``; or a
        ``204 No Content`` (empty body: the server explicitly says there is nothing to
        answer, and an HTML error page is never empty).

        Raises:
            TransientError: unreachable, 5xx/408/429 after the retries, or a 2xx whose
                body is not JSON (an HTML page) or is empty without 204: tried again later.
            PermanentError: other 4xx, or a JSON answer saying failure (``{"success":
                false, "message": ...}``): parked as ``failed`` with that reason.
        """
        if self.url is None or self.client is None:
            if self.local_log is not None:
                with open(self.local_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(payload) + "\n")
            return
        response = self.client.post(self.url, timeout=self.timeout, json=payload)
        check_reply(response, self.url, empty_ok=response.status_code == 204)


def api_key_from_env(name: str = "VIZO_API_KEY") -> str | None:
    """The API key, read from the environment only (never from a config file)."""
    return os.environ.get(name) or None
