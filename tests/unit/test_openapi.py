"""The OpenAPI document describes every route the API serves: a route added without its
operation fails here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from openapi_spec_validator import validate

from streams.http.openapi import OPERATIONS, openapi_document
from streams.http.server import Api
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def served() -> set[tuple[str, str]]:
    """(method, path) of every route of the app the worker serves (HEAD comes with GET)."""
    pipeline = cast("Pipeline", SimpleNamespace(settings=Settings()))
    app = Api(pipeline).app()
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def test_every_served_route_is_in_the_document() -> None:
    paths = openapi_document()["paths"]
    described = {(method, path) for path, ops in paths.items() for method in ops}
    assert served() - described == set()
    assert described - served() == set()


def test_the_document_is_openapi_3_1_with_the_models_schemas() -> None:
    document = openapi_document()
    validate(document)
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    assert {"Declaration", "ResponderRequest", "CommandBody", "Incident", "ApiError"} <= set(
        schemas
    )
    responders = document["paths"]["/api/incidents/{id}/responders"]["post"]
    assert responders["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResponderRequest"
    }
    assert len({(op.method, op.path) for op in OPERATIONS}) == len(OPERATIONS)
