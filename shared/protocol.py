"""Sync protocol constants and payload schemas, shared by HQ and the agent."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

API_PREFIX = "/api/v1"
PUSH_PATH = f"{API_PREFIX}/sync/push"
PULL_PATH = f"{API_PREFIX}/sync/pull"
MAX_BATCH_EVENTS = 1000
MAX_SEQ = 2**62

# Per-event statuses in a push response.
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

# Stable rejection codes.
INVALID = "invalid"
CONFLICT = "conflict"
IN_FUTURE = "occurred_in_future"
UNKNOWN_REP = "unknown_rep"
REP_OTHER_BRANCH = "rep_other_branch"
DEAL_OTHER_BRANCH = "deal_other_branch"

REJECTION_MESSAGES = {
    INVALID: "the event does not match its schema",
    CONFLICT: "an event with this id but a different body was already received",
    IN_FUTURE: "occurred_at is in the future",
    UNKNOWN_REP: "no rep with this code",
    REP_OTHER_BRANCH: "the rep belongs to another branch",
    DEAL_OTHER_BRANCH: "the deal belongs to another branch",
}


# PostgreSQL keeps no NUL character in text (events are checked whole by shared.events).
NUL_MESSAGE = "must not contain the NUL character (U+0000)"
NO_NUL = validate.Regexp(r"[^\x00]*\Z", error=NUL_MESSAGE)


class AgentInfoSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=[validate.Length(min=1, max=100), NO_NUL])
    version = fields.String(load_default="", validate=[validate.Length(max=50), NO_NUL])


class PushRequestSchema(Schema):
    """The push body; each event is checked on its own (``shared.events``)."""

    class Meta:
        unknown = RAISE

    agent = fields.Nested(AgentInfoSchema, required=True)
    events = fields.List(fields.Raw(), required=True)


class PushResultSchema(Schema):
    index = fields.Integer()
    id = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": [ACCEPTED, DUPLICATE, REJECTED]})
    code = fields.String()
    message = fields.String()
    errors = fields.Dict()
    violations = fields.List(fields.Dict(), metadata={"description": "rules the event broke"})
    pending = fields.Boolean(metadata={"description": "held by a block rule until approved"})


class PushResponseSchema(Schema):
    dry_run = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    results = fields.List(fields.Nested(PushResultSchema))
