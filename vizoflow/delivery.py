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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from vizoflow.errors import UploadError
from vizoflow.outbox import LOCAL

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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before giving the item back to the outbox.

    Args:
        attempts: Tries per request (the seed's 3).
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
    """

    def __init__(self, client: HttpClient, url: str, video_url_template: str, field: str = "file",
                 timeout_base: float = 10.0, timeout_per_mb: float = 5.0) -> None:
        if "{filename}" not in video_url_template:
            raise ValueError(f"video_url_template must contain {{filename}}, got {video_url_template!r}")
        self.client, self.url, self.template, self.field = client, url, video_url_template, field
        self.timeout_base, self.timeout_per_mb = timeout_base, timeout_per_mb
        self.destination = endpoint_name(url)  # what the outbox records as ``uploaded_to``

    def timeout_for(self, size: int) -> float:
        """Seconds allowed for a file of ``size`` bytes."""
        return self.timeout_base + self.timeout_per_mb * size / 2**20

    def upload(self, path: Path) -> Stored:
        """Upload ``path`` (the seed's ``_upload_video_file``).

        Raises:
            PermanentError: missing file, refused, or an answer without a safe filename.
            TransientError: the server could not be reached or kept failing.
        """
        if not path.is_file():
            raise PermanentError(f"clip to upload is missing: {path}")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            response = self.client.post(self.url, timeout=self.timeout_for(size),
                                        files={self.field: (path.name, fh, "video/mp4")})
        try:
            answer = response.json()
        except ValueError:
            raise TransientError(f"POST {self.url}: answer is not JSON: {response.text[:80]!r}") from None
        name = answer.get("filename") if isinstance(answer, dict) else None
        if name is None and isinstance(answer, dict) and isinstance(answer.get("data"), dict):
            name = answer["data"].get("filename")
        filename = safe_filename(name)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return Stored(filename, self.template.format(filename=filename), stamp)


class LocalStore:
    """Evidence that stays on this machine (no upload URL configured): a ``file://`` URL."""

    destination = LOCAL

    def upload(self, path: Path) -> Stored:
        """Point at the local clip instead of uploading it."""
        if not path.is_file():
            raise PermanentError(f"clip is missing: {path}")
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return Stored(path.name, path.resolve().as_uri(), stamp)


class IncidentReporter:
    """POST the incident JSON (the seed's ``_report_incident_payload``).

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
        """Deliver one incident."""
        if self.url is None or self.client is None:
            if self.local_log is not None:
                with open(self.local_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(payload) + "\n")
            return
        self.client.post(self.url, timeout=self.timeout, json=payload)


def api_key_from_env(name: str = "VIZO_API_KEY") -> str | None:
    """The API key, read from the environment only (never from a config file)."""
    return os.environ.get(name) or None
