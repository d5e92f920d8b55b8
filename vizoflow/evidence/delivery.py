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
from itertools import takewhile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import InvalidHeader, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Retry

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


#: Answers tried again: request timeout, too many requests, every 5xx. Any other 4xx is permanent.
RETRIED_STATUSES = frozenset({408, 429, *range(500, 600)})


class PolicyRetry(Retry):
    """urllib3's :class:`~urllib3.util.Retry` (it counts the attempts, decides what is
    retried, parses ``Retry-After`` and re-sends the request) with three changes:

    - The first retry waits ``backoff_factor`` seconds, the next twice that, and so
      on (urllib3 retries the first time at once and only then waits
      ``backoff_factor * 2**(n - 1)``).
    - The wait goes through an injectable ``wait`` function (tests record it instead
      of sleeping), and a WARNING names each retried failure (never a header).
    - ``Retry-After`` is capped at ``backoff_max`` (the policy's ``max_wait``), and one
      urllib3 cannot parse (``"1.5"``, ``"soon"``) falls back to the backoff instead
      of failing the request with ``InvalidHeader``.

    Only :data:`RETRIED_STATUSES` are retried: urllib3's default would also retry a
    413 carrying ``Retry-After``, which stays permanent here.
    """

    RETRY_AFTER_STATUS_CODES = frozenset()  # the status_forcelist alone decides what is retried

    def __init__(self, *args: Any, wait: Callable[[float], None] = time.sleep, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait = wait

    @classmethod
    def for_policy(cls, policy: RetryPolicy, wait: Callable[[float], None] = time.sleep) -> PolicyRetry:
        """``policy.attempts`` tries of a POST on connection errors, timeouts and :data:`RETRIED_STATUSES`."""
        return cls(total=max(0, policy.attempts - 1), connect=None, read=None, status=None, other=None,
                   allowed_methods=frozenset({"POST"}),  # urllib3 retries no POST by default
                   status_forcelist=RETRIED_STATUSES, raise_on_status=False,  # the last answer is classified by HttpClient
                   backoff_factor=policy.backoff, backoff_max=policy.max_wait,
                   respect_retry_after_header=True, wait=wait)

    def new(self, **kwargs: Any) -> PolicyRetry:
        retry = super().new(**kwargs)
        retry.wait = self.wait
        return retry

    def get_backoff_time(self) -> float:
        failures = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        if failures == 0:
            return 0.0
        return float(max(0.0, min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1))))

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.get_backoff_time()
        if response is not None and self.respect_retry_after_header:
            try:
                after = self.get_retry_after(response)  # seconds or an HTTP date
            except InvalidHeader:
                after = None
            if after is not None:
                wait = min(after, self.backoff_max)  # max_wait caps a server's wish too
        if self.history:
            last = self.history[-1]
            why = f"HTTP {last.status}" if last.status else type(last.error).__name__
            log.warning("%s %s: %s (attempt %d of %d), next try in %.2f s", last.method, last.url, why,
                        len(self.history), len(self.history) + (self.total or 0) + 1, wait)
        self.wait(wait)


class HttpClient:
    """POST with the API key header, retries on transient failures, and clear errors.

    The retries are urllib3's (:class:`PolicyRetry`, mounted on the session through
    ``HTTPAdapter``). requests encodes the body once (a multipart file is read then),
    and urllib3 sends those same bytes again on every attempt, so nothing is rewound.

    Args:
        api_key: Sent as ``X-API-Key``; None sends no key.
        policy: Retry policy.
        sleep: Injected for tests; ``time.sleep`` by default.
    """

    def __init__(self, api_key: str | None, policy: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self.retry = PolicyRetry.for_policy(policy, wait=sleep)
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=self.retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._headers = {"X-API-Key": api_key} if api_key else {}

    def close(self) -> None:
        """Close the session's pooled connections."""
        self._session.close()

    def post(self, url: str, timeout: float, **kwargs: Any) -> requests.Response:
        """POST, retrying transient failures (``timeout`` is per attempt); return the 2xx response.

        Raises:
            PermanentError: 4xx other than 408/429 (not retried).
            TransientError: still failing after ``policy.attempts`` tries (connection
                error, timeout, 408/429/5xx), or the answer's body was cut off.
        """
        try:
            response = self._session.post(url, headers=self._headers, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(_failure(url, timeout, exc)) from None  # no chained request (it holds the key)
        status = response.status_code
        if 200 <= status < 300:
            return response
        error = f"POST {url}: HTTP {status} {response.reason}"
        if status in RETRIED_STATUSES or not 400 <= status < 500:
            raise TransientError(error)
        hint = " (check VIZO_API_KEY)" if status in (401, 403) else ""
        raise PermanentError(error + hint)


def _failure(url: str, timeout: float, exc: requests.RequestException) -> str:
    """The reason a request failed, from requests' exception (the last attempt's, when urllib3 gave up)."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", None) or reason  # MaxRetryError: the last attempt's error
    timed_out = isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)  # (a subclass, refused)
    if isinstance(exc, requests.Timeout) or timed_out:
        return f"POST {url}: timed out after {timeout:.3g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"POST {url}: the answer was cut off ({type(reason).__name__})"
    return f"POST {url}: connection failed ({type(reason).__name__})"


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


class LocalCopy:
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
