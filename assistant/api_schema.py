"""What the OpenAPI schema says about the API beyond FastAPI's defaults: the {"error"} body of
every failure, each status the API can give with its headers, and the request body of
/api/ask (which is parsed off the event loop, so FastAPI does not see it as a parameter)."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

from pydantic import BaseModel


def _invisible_ranges() -> list[tuple[int, int]]:
    """Code points that clean_input turns into spaces or strips (control, format, whitespace)."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # a lone surrogate becomes "?", which is visible
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf") or char.isspace():
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return ranges


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


# "Contains at least one character that is not a control, format or space character."
VISIBLE_PATTERN = (
    "[^" + "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in _invisible_ranges()) + "]"
)


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    error: str
    details: list[ErrorDetail] | None = None


def _retry_after(description: str) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    }


ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": ErrorBody, "description": "the body did not arrive in time"},
    413: {"model": ErrorBody, "description": "the body is larger than ASSISTANT_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "not JSON"},
    422: {"model": ErrorBody, "description": "invalid request (details name the fields)"},
    429: _retry_after("too many requests from this client"),
    503: _retry_after("still loading, every answer slot is busy, or the vector store does not answer"),
}

ASK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AskRequest"}}},
    }
}


def add_schemas(app: Any, *models: type[BaseModel]) -> None:
    """Put models that no route parameter names into the app's OpenAPI components."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return dict(app.openapi_schema)
        schema = make()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
        app.openapi_schema = schema
        return dict(schema)

    app.openapi = openapi
