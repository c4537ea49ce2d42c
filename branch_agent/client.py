"""HTTP client for HQ's sync API (requests, gzip bodies, classified failures)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson
import requests

from branch_agent import __version__
from shared.protocol import PULL_PATH, PUSH_PATH


class TransientError(Exception):
    """HQ is unreachable or busy: try again later (``retry_after`` seconds if HQ said)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """HQ refused the request itself (bad token, bad body): retrying will not help."""

    def __init__(self, message: str, status: int, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class HQClient:
    """Talks to one HQ with one agent token."""

    def __init__(self, base_url: str, token: str, agent_id: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.agent_id = agent_id
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "User-Agent": f"branch-agent/{__version__}",
            }
        )

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise TransientError(f"HQ unreachable: {exc.__class__.__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            if response.status_code < 400:
                raise TransientError("HQ answered with a body that is not a JSON object")
            body = {"message": str(body)[:200]}  # a proxy's answer, not HQ's JSON error
        if response.status_code in RETRYABLE:
            raise TransientError(
                f"HQ answered {response.status_code}: {body.get('message', response.reason)}",
                _retry_after(response),
            )
        if response.status_code >= 400:
            raise PermanentError(
                f"HQ refused ({response.status_code} {body.get('code', '')}): "
                f"{body.get('message', response.reason)}",
                response.status_code,
                body.get("code"),
            )
        return body

    def push(self, events: list[dict]) -> dict:
        """Push a batch; return HQ's answer (``results`` per event)."""
        payload = {"agent": {"id": self.agent_id, "version": __version__}, "events": events}
        body = gzip.compress(orjson.dumps(payload), compresslevel=5)
        answer = self._call(
            "POST",
            PUSH_PATH,
            data=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(events):
            raise TransientError("HQ's answer does not have one result per event")
        return answer

    def pull(self, cursor: str | None = None, playbook_version: str | None = None) -> dict:
        """Fetch reference data, a newer playbook, and what changed since ``cursor``."""
        params = {"cursor": cursor, "playbook_version": playbook_version}
        return self._call("GET", PULL_PATH, params={k: v for k, v in params.items() if v})
