"""The OpenAPI schema and its Swagger UI page, served without any outside host (works offline),
to signed-in users (anonymous: tests/accounts/test_throttling.py)."""
import re

import pytest
import yaml
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_schema_is_valid_openapi_3_with_the_corpus_paths(signed_in):
    response = signed_in.get(reverse("api:schema"))
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # drf-spectacular's bundled OpenAPI 3 JSON schema; raises if invalid
    assert {"/api/prompts/", "/api/prompts/{id}/", "/api/datasets/{slug}/", "/api/languages/{code}/",
            "/api/harm-categories/", "/api/auth/token/"} <= set(schema["paths"])

    prompt_list = schema["paths"]["/api/prompts/"]["get"]
    parameters = {p["name"]: p["schema"]["type"] for p in prompt_list["parameters"]}
    assert parameters | {"language": "string", "min_label": "number", "toxic": "boolean"} == parameters
    assert {"dataset", "category", "culturally_specific", "group", "q", "page", "page_size"} <= set(parameters)
    assert "400" in prompt_list["responses"]
    label = schema["components"]["schemas"]["PromptLabel"]["properties"]
    assert {"category", "value", "rater_values", "num_raters", "source", "scale"} <= set(label)
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_schema_as_json(signed_in):
    response = signed_in.get(reverse("api:schema") + "?format=json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "ToxPlatform API"


def test_docs_page_loads_everything_from_this_server(signed_in):
    client = signed_in
    response = client.get(reverse("api:docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "SwaggerUIBundle" in html or "swagger-ui" in html
    # Names of CDN hosts, not the bare word: a random CSRF token in the page may spell "cdn".
    assert not re.search(r"cdn\.|jsdelivr|unpkg|cdnjs", html.lower())
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), "the docs page must not load from another host"
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:  # each asset the page needs is served here
        assert client.get(asset).status_code == 200, asset


def test_docs_page_links_back_to_the_site(signed_in):
    html = signed_in.get(reverse("api:docs")).content.decode()
    assert '<a href="/"' in html and "← ToxPlatform" in html and 'id="swagger-ui"' in html
