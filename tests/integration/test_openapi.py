"""The OpenAPI document describes every API route the app serves."""

from __future__ import annotations

import re


def test_every_api_route_is_in_the_openapi_document(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    live = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json"
    }
    assert live <= documented, sorted(live - documented)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
