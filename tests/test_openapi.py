"""``GET /openapi.json`` (OpenAPI 3.1 of the HTTP routes) and ``GET /`` from a browser."""

from __future__ import annotations

from typing import Any, cast

import openapi_spec_validator
import tornado.web

import settings as settings_module
from server.http.app import Services, make_app, routes
from server.openapi import build_document, path_templates, rules_of
from tests.support import ServerProcess

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def table_document() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The document of the application's own table, and every (path, method) of the table."""
    settings = settings_module.load({})
    services = cast(Services, _Anything())
    application = make_app(settings, services)
    expected = []
    for pattern, handler, _kwargs in routes(settings, services):
        for template in path_templates(pattern, handler):
            for method in HTTP_METHODS:
                function = getattr(handler, method)
                if function is getattr(tornado.web.RequestHandler, method):
                    continue  # not defined: Tornado's 405
                routed = method in getattr(handler, "routed_methods", ())  # POST /rpc: delegate
                if (
                    function.__name__ in HTTP_METHODS or routed
                ):  # not a refusal (get = _wrong_method)
                    expected.append((template, method))
    return build_document(rules_of(application)), expected


class _Anything:
    """Stands in for the services: the route table only passes them on."""

    def __getattr__(self, name: str) -> None:
        return None


def test_path_templates_expand_alternatives_and_name_groups() -> None:
    from server.http.jobs import JOB_ID_PATTERN, JobActionHandler

    assert path_templates(rf"/api/jobs/{JOB_ID_PATTERN}/(pause|resume|run)", JobActionHandler) == [
        "/api/jobs/{job_id}/pause",
        "/api/jobs/{job_id}/resume",
        "/api/jobs/{job_id}/run",
    ]
    assert path_templates(r"/openrpc\.json$") == ["/openrpc.json"]


def test_document_is_valid_openapi_3_1() -> None:
    document, _ = table_document()
    assert document["openapi"] == "3.1.0"
    openapi_spec_validator.validate(cast(Any, document))


def test_every_route_of_the_table_is_in_the_document_and_described() -> None:
    document, expected = table_document()
    assert ("/rpc", "post") in expected and ("/api/jobs/{job_id}/run", "post") in expected
    for path, method in expected:
        assert method in document["paths"].get(path, {}), (path, method)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "x-undocumented" not in operation, (path, method)
    assert document["paths"]["/"]["get"]["responses"]["302"]
    assert document["paths"]["/health_check"]["get"]["security"] == []


def test_request_bodies_are_the_schemas_the_handlers_validate_with() -> None:
    from kit.jobs import JOB_SCHEMA
    from server.http.flow import FLOW_SCHEMA

    document, _ = table_document()
    schemas = document["components"]["schemas"]
    assert schemas["FlowStart"] == FLOW_SCHEMA and schemas["JobSpec"] == JOB_SCHEMA
    body = document["paths"]["/api/flow"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/FlowStart"}


def test_server_serves_the_document_of_its_table(shared_server: ServerProcess) -> None:
    response = shared_server.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    served = response.json()
    document, _ = table_document()
    assert sorted(served["paths"]) == sorted(document["paths"])
    assert served["paths"]["/sys/reset"].keys() == {"get", "post"}


def test_browser_get_of_the_root_is_redirected_to_docs(shared_server: ServerProcess) -> None:
    response = shared_server.http.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/docs"


def test_root_keeps_its_json_rpc_meaning_for_other_clients(shared_server: ServerProcess) -> None:
    response = shared_server.http.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 405 and response.json()["error"]["code"] == 405
    call = shared_server.http.post(
        "/", json={"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}
    )
    assert call.json()["result"] == 3
