"""JSON errors with a stable ``code`` for every failure: never HTML, never a traceback."""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy.exc
from flask import Flask, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from hq_server.services.scope import OutOfScope

log = logging.getLogger(__name__)

# HTTP status -> stable code when the raiser gave none.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as ``{"code", "message", "errors"}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors, self.headers = errors, headers or {}


# The database refused a value (out of its type's range, the NUL character, text that is
# no valid date or id): a request's value, checked nowhere before. Through SQLAlchemy or
# on the driver directly.
DATA_ERRORS = (sqlalchemy.exc.DataError, psycopg.DataError)


def bad_value(exc: Exception) -> ApiError:
    """The 400 that answers a value the database refused, with its reason."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ApiError(
        400,
        "bad_value",
        "a value in the request cannot be stored or looked up"
        + (f": {reason[0]}" if reason else ""),
    )


def error_response(
    status: int, code: str, message: str, errors: dict | None = None, headers: dict | None = None
):
    """Build the JSON error response every failure uses."""
    body = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    """Install the handlers (after flask-smorest's, so these win)."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.errorhandler(OutOfScope)
    def _out_of_scope(exc: OutOfScope):
        return error_response(404, "not_found", f"no org unit {exc.args[0]!r} in your scope")

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError):
        return error_response(422, "invalid", "the request is not valid", exc.normalized_messages())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        data = getattr(exc, "data", None) or {}
        errors = data.get("messages")
        if isinstance(errors, dict) and len(errors) == 1:
            # flask-smorest nests by location ("query", "json"); keep the fields.
            errors = next(iter(errors.values()))
        status = exc.code or 500
        return error_response(
            status, STATUS_CODES.get(status, "http_error"), exc.description or exc.name, errors
        )

    def _data_error(exc: Exception):
        log.warning("a value the database refused: %s", exc)
        return _api_error(bad_value(exc))

    for kind in DATA_ERRORS:
        app.register_error_handler(kind, _data_error)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; the request was logged")
