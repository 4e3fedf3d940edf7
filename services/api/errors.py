"""The error answers of the API as its OpenAPI document declares them.

Every `/api/v1` route answers 401 without a valid token; those that need an admin answer 403,
those naming a resource in their path 404 (a resource the token may not see is answered exactly as
one that does not exist), those taking a JSON body 400 when it does not parse. `install_errors`
adds these to the OpenAPI document from each route's dependencies and path, so a new router is
documented without repeating them; what only some routes answer (409 for a step the alert's state
does not allow) they declare with `responses=errors(...)`. Every error has the same shape, `Error`:
a 422 carries FastAPI's validation errors or a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.api.deps import get_principal, require_admin


class Error(BaseModel):
    """An error answer. `detail` is the reason as text; for a request that fails validation, the
    list of FastAPI's validation errors; for `PUT /catalog`, `{"message", "problems"}`."""

    detail: str | list[dict[str, Any]] | dict[str, Any]


_MEANING = {
    400: "the body is not JSON",
    401: "no token, or an unknown, expired or revoked one",
    403: "the token's role may not do this",
    404: "not found, or not visible to the token",
    409: "not allowed from the current state (nothing changed)",
    413: "the request body is too large",
    422: "invalid request: the reason, or every validation error",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers these codes besides the ones `install_errors` infers."""
    return {code: {"description": _MEANING[code]} for code in codes}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _inferred(route: APIRoute) -> list[int]:
    calls = set(_calls(route.dependant))
    codes = [401] if get_principal in calls else []
    if require_admin in calls:
        codes.append(403)
    if route.dependant.path_params:
        codes.append(404)
    if route.dependant.body_params:
        codes.append(400)
    return codes


_NUL = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)


async def _refuse_nul(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "text may not contain the NUL character (U+0000)"}, status_code=422)


def install_errors(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Answer text PostgreSQL cannot hold (U+0000, in any parameter or body) with 422, not 500, and
    make `app.openapi()` declare the error answers of the `/api/` routes of `routers` (those
    included in `app`), with the Error model.

    FastAPI's default 422 (a list of validation errors) is replaced, since the API's own 422s
    carry a reason; a route's own description of a code is kept.
    """
    for exc in _NUL:
        app.add_exception_handler(exc, _refuse_nul)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = Error.model_json_schema()
            body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            for route in (route for router in routers for route in router.routes):
                if not isinstance(route, APIRoute) or not route.path.startswith("/api/"):
                    continue
                for method in route.methods or ():
                    responses = doc["paths"][route.path_format][method.lower()]["responses"]
                    for code in _inferred(route):
                        responses.setdefault(str(code), {"description": _MEANING[code]})
                    for code, response in responses.items():
                        if int(code) in _MEANING:
                            response["content"] = body
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
