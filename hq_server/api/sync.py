"""Sync API for branch agents: push events, pull reference data."""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass

import orjson
from flask import current_app, g, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields
from werkzeug.exceptions import HTTPException

from hq_server.api.auth import token_required
from hq_server.api.errors import DATA_ERRORS, STATUS_CODES, ApiError, bad_value
from hq_server.bounds import moment_field
from hq_server.extensions import db
from hq_server.services.ingest import PushConflict, PushOutcome, push_batch, record_push_failure
from hq_server.services.org import read_active_unit
from hq_server.services.pull import pull_state
from shared import protocol
from shared.fastpath import compile_schema
from shared.protocol import PushRequestSchema, PushResponseSchema

log = logging.getLogger(__name__)
blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync", description="Branch agent sync")
PUSH_REQUEST = PushRequestSchema()
FAST_PUSH_REQUEST = compile_schema(PUSH_REQUEST)  # the envelope of 500 events, checked in C


@dataclass
class _Seen:
    """What a push's body told before the push failed: kept with the failure."""

    agent_id: str = ""  # unknown until the body parses
    events: int | None = None

    def note(self, payload: object) -> None:
        if not isinstance(payload, dict):
            return
        agent = payload.get("agent")
        agent_id = agent.get("id") if isinstance(agent, dict) else None
        if isinstance(agent_id, str) and len(agent_id) <= 100:
            self.agent_id = agent_id
        if isinstance(payload.get("events"), list):
            self.events = len(payload["events"])


def _decompress(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, "bad_gzip", f"the body is not valid gzip: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(
            413, "decompressed_too_large", f"the decompressed body exceeds {limit} bytes"
        )
    return out


def _read_json() -> object:
    settings = current_app.config["SETTINGS"]
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before reading
    if request.headers.get("Content-Encoding", "").lower() in ("gzip", "deflate"):
        body = _decompress(body, settings.max_decompressed_bytes)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from exc


def _active_branch():
    # The token names the branch; its active row is the one in use (a moved branch has a new one).
    branch = read_active_unit(g.principal.scope_code)
    if branch is None:
        raise ApiError(403, "branch_inactive", "this branch is closed; its token is retired")
    return branch


@blp.post("/push")
@token_required("agent")
@blp.doc(
    requestBody={"content": {"application/json": {"schema": PushRequestSchema}}},
    parameters=[
        {
            "in": "query",
            "name": "dry_run",
            "schema": {"type": "boolean"},
            "description": "validate only; store nothing",
        }
    ],
)
@blp.response(200, PushResponseSchema)
def push():
    """Store a batch of events; answer per event: accepted, duplicate or rejected."""
    dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
    seen = _Seen()
    try:
        outcome = _push(seen, dry_run)
    except Exception as exc:
        if not dry_run:  # a dry run stores nothing, failures included
            _record_failure(seen, *_status_of(exc))
        raise
    rejected = outcome.counts[protocol.REJECTED]
    if not dry_run and rejected and rejected == len(outcome.results):
        codes = Counter(r["code"] for r in outcome.results)
        _record_failure(seen, 200, codes.most_common(1)[0][0])
    # Already plain JSON values: encoded as is, not dumped again through the schema (which
    # documents the answer) at a result per event.
    return current_app.json.response(outcome.as_dict())


def _push(seen: _Seen, dry_run: bool) -> PushOutcome:
    settings = current_app.config["SETTINGS"]
    payload = _read_json()
    seen.note(payload)
    body = FAST_PUSH_REQUEST.load(payload) if FAST_PUSH_REQUEST else None
    try:
        body = body or PUSH_REQUEST.load(payload if isinstance(payload, dict) else {"_": payload})
    except ValidationError as exc:
        raise ApiError(
            422, "invalid", "the push body is not valid", exc.normalized_messages()
        ) from exc
    if len(body["events"]) > settings.max_batch_events:
        raise ApiError(
            413,
            "too_many_events",
            f"at most {settings.max_batch_events} events per push; got {len(body['events'])}",
        )
    branch = _active_branch()
    try:
        outcome = push_batch(
            branch, body["agent"]["id"], body["agent"]["version"], body["events"], dry_run=dry_run
        )
    except PushConflict as exc:
        db.session.rollback()
        raise ApiError(
            409,
            "retry",
            f"{exc}; nothing was stored, push the batch again",
            headers={"Retry-After": "1"},
        ) from exc
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    return outcome


def _status_of(exc: Exception) -> tuple[int, str]:
    """Return the status and code the error handlers answer ``exc`` with."""
    if isinstance(exc, DATA_ERRORS):
        exc = bad_value(exc)
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        return status, STATUS_CODES.get(status, "http_error")
    return 500, STATUS_CODES[500]


def _record_failure(seen: _Seen, status: int, code: str) -> None:
    """Keep a failed push in a transaction of its own; never let this mask the push's answer."""
    try:
        db.session.rollback()  # whatever the failed push wrote is not kept
        branch = read_active_unit(g.principal.scope_code)
        if branch is not None:  # a closed branch is not judged any more
            record_push_failure(branch.id, seen.agent_id, status, code, seen.events)
    except Exception:
        log.warning("could not record a failed push (%s %s)", status, code, exc_info=True)
        with suppress(Exception):
            db.session.rollback()


class PullArgsSchema(Schema):
    cursor = moment_field(
        fields.AwareDateTime,
        metadata={"description": "the cursor of the previous pull; omit for everything"},
    )
    playbook_version = fields.Integer(
        metadata={"description": "the playbook version the agent has; a newer one is sent"}
    )


class PullResponseSchema(Schema):
    cursor = fields.String()
    server_time = fields.String()
    branch = fields.Dict()
    reps = fields.List(fields.Dict())
    stages = fields.List(fields.Dict())
    playbook = fields.Dict(allow_none=True)
    playbook_version = fields.Integer(allow_none=True)
    decisions = fields.List(fields.Dict())
    targets = fields.List(fields.Dict())
    leads = fields.List(fields.Dict())


@blp.get("/pull")
@token_required("agent")
@blp.arguments(PullArgsSchema, location="query", as_kwargs=True)
@blp.response(200, PullResponseSchema)
def pull(cursor=None, playbook_version=None):
    """Return reference data, a newer playbook, leads and approval decisions for the branch."""
    branch = _active_branch()
    return pull_state(branch, cursor, playbook_version)
