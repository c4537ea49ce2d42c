"""Bearer-token authentication for API views."""

from __future__ import annotations

from functools import wraps

from flask import g, request

from hq_server.api.errors import ApiError
from hq_server.services.auth import find_principal
from hq_server.services.scope import Principal

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hq"'}


def _principal() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <token>'", headers=CHALLENGE
        )
    principal = find_principal(token.strip())
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token", headers=CHALLENGE)
    return principal


def token_required(*kinds: str):
    """Require a bearer token of one of ``kinds`` ("agent", "user"); sets ``g.principal``."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = _principal()
            if kinds and principal.kind not in kinds:
                raise ApiError(
                    403, "forbidden", f"this endpoint needs a {' or '.join(kinds)} token"
                )
            g.principal = principal
            return view(*args, **kwargs)

        wrapper._token_kinds = kinds  # read by the route-coverage test
        return wrapper

    return decorator
