"""Sync API for branch agents: push events, pull reference data."""

from __future__ import annotations

import zlib

import orjson
from flask import current_app, g, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields

from hq_server.api.auth import token_required
from hq_server.api.errors import ApiError
from hq_server.extensions import db
from hq_server.services.ingest import PushConflict, push_batch
from hq_server.services.org import active_unit
from hq_server.services.pull import pull_state
from shared.protocol import PushRequestSchema, PushResponseSchema

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync", description="Branch agent sync")
PUSH_REQUEST = PushRequestSchema()


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
    branch = active_unit(g.principal.scope_code)
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
    settings = current_app.config["SETTINGS"]
    payload = _read_json()
    try:
        body = PUSH_REQUEST.load(payload if isinstance(payload, dict) else {"_": payload})
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
    dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
    # The token names the branch; events go to its active row (a moved branch has a new one).
    branch = active_unit(g.principal.scope_code)
    if branch is None:
        raise ApiError(
            403, "branch_inactive", "this branch is closed; its token can no longer push"
        )
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
    return outcome.as_dict()


class PullArgsSchema(Schema):
    cursor = fields.AwareDateTime(
        metadata={"description": "the cursor of the previous pull; omit for everything"}
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
