"""The OpenAPI document says what is served, and its docs page needs no network (issue 12).

The document itself is checked here (errors, decimals, statuses, examples); whether the app keeps
to it is ``test_api_conformance.py`` (schemathesis).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

PROBLEM = "application/problem+json"
REDOC = Path(__file__).resolve().parents[2] / "web_server/ui/static/vendor/redoc"
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
SIGNED_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec(app) -> dict[str, Any]:
    """The served OpenAPI document."""
    return app.test_client().get("/api/v1/openapi.json").get_json()


def _operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, kind, name = node["$ref"].split("/")[1:]
        node = spec[section][kind][name]
    return node


def _walk(node: Any, where: str = ""):
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}/{index}")


def test_the_document_is_valid_openapi_3_1_and_its_schemas_valid_json_schema(spec):
    # schemathesis ships the OpenAPI 3.1 meta-schema, and jsonschema-rs (its dependency) the
    # JSON Schema ones: a bound written as a string ("minimum": "0") fails the second.
    import jsonschema_rs
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(spec)] == []
    schemas = [n["schema"] for _, n in _walk(spec) if isinstance(n.get("schema"), dict)]
    schemas += list(spec["components"]["schemas"].values())
    assert len(schemas) > 40
    for schema in schemas:
        jsonschema_rs.meta.validate(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        )


def test_every_error_of_every_operation_is_problem_json(spec):
    operations = dict(_operations(spec))
    # 35, the orders' amend and fills (issue 11), the event stream and webhooks' five.
    assert len(operations) == 42
    for name, operation in operations.items():
        responses = operation["responses"]
        assert "default" not in responses, name
        for status, response in responses.items():
            content = _resolve(spec, response).get("content", {})
            if int(status) >= 400:
                assert list(content) == [PROBLEM], (name, status)
                schema = content[PROBLEM]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (name, status)
                assert content[PROBLEM]["example"]["status"] == int(status)
            else:
                # The event stream's 200 is also text/event-stream (Accept decides).
                stream = {"text/event-stream"} if name == "GET /api/v1/events" else set()
                assert set(content) <= {"application/json"} | stream, (name, status)


def test_every_operation_lists_the_statuses_it_can_answer(spec):
    for name, operation in _operations(spec):
        statuses = {int(s) for s in operation["responses"]}
        assert {401, 413, 500, 503} <= statuses, name
        if "requestBody" in operation:
            assert {400, 415, 422} <= statuses, name
        if "{" in name:
            assert 404 in statuses, name
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert 422 in statuses, name
    responses = dict(_operations(spec))
    assert {200, 201, 409, 424, 429, 503} <= {
        int(s) for s in responses["POST /api/v1/orders"]["responses"]
    }
    assert 409 in {int(s) for s in responses["DELETE /api/v1/accounts/{account_id}"]["responses"]}
    assert 403 in {int(s) for s in responses["POST /api/v1/accounts"]["responses"]}


def test_decimals_are_strings_with_their_pattern(spec):
    schemas = spec["components"]["schemas"]
    decimals = {
        "OrderRequest": ("quantity", "limit_price"),
        "Order": ("quantity", "limit_price", "filled_quantity", "average_fill_price"),
        "Balance": ("total", "available", "locked"),
        "Holding": ("quantity", "avg_price", "current_price", "pnl", "pnl_pct"),
    }
    for schema, names in decimals.items():
        for name in names:
            prop = schemas[schema]["properties"][name]
            types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            assert "number" not in types and "string" in types, (schema, name)
            assert prop["pattern"] in (DECIMAL, SIGNED_DECIMAL), (schema, name)
            assert prop["maxLength"] <= 29
    # Nothing anywhere is typed as a number but the problem's retry_after.
    numbers = [w for w, n in _walk(spec) if n.get("type") in ("number", ["number", "null"])]
    assert numbers == ["/components/schemas/Problem/properties/retry_after"]


def test_bounds_are_numbers_and_patterns_compile(spec):
    for where, node in _walk(spec):
        for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if bound in node and not where.endswith("/properties"):
                assert isinstance(node[bound], int | float), (where, bound, node[bound])
                assert not isinstance(node[bound], bool)
        if isinstance(node.get("pattern"), str):
            re.compile(node["pattern"])


def test_request_bodies_and_errors_have_examples(spec):
    for name, operation in _operations(spec):
        if "requestBody" in operation:
            content = operation["requestBody"]["content"]
            assert list(content) == ["application/json"], name
            assert "example" in content["application/json"], name
    for name, response in spec["components"]["responses"].items():
        assert "example" in response["content"][PROBLEM], name


def test_the_docs_page_loads_its_script_from_the_gateway(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts == ["/static/vendor/redoc/redoc.standalone.js"]
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
    script = client.get(scripts[0])
    assert script.status_code == 200
    assert script.mimetype in ("text/javascript", "application/javascript")
    body = script.get_data()
    recorded = re.search(r"SHA-256 \| `([0-9a-f]{64})`", (REDOC / "README.md").read_text())
    assert hashlib.sha256(body).hexdigest() == recorded.group(1)
    assert (REDOC / "LICENSE").read_text().startswith("The MIT License")
