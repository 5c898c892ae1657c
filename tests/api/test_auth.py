"""Every corpus endpoint needs a user: a token (scripts) or a session (the browsable API)."""
import pytest
from django.urls import reverse
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role, ensure_api_token

ENDPOINTS = ["api:api-root", "api:language-list", "api:harm-category-list", "api:dataset-list", "api:prompt-list"]


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ENDPOINTS)
def test_anonymous_is_refused(url_name):
    response = APIClient().get(reverse(url_name))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_anonymous_cannot_read_a_prompt(corpus):
    prompt = corpus["rtp-lx-mini"].prompts.first()
    assert APIClient().get(reverse("api:prompt-detail", args=[prompt.pk])).status_code == 401


@pytest.mark.parametrize("url_name", ENDPOINTS[1:])
def test_an_annotator_or_a_user_without_a_role_is_forbidden(url_name, corpus):
    """Gold labels are what annotators are measured against: they do not get the corpus."""
    annotator = create_user_with_role(username="ann", password="a long enough password", role=Role.ANNOTATOR)
    no_role = get_user_model().objects.create_user("nobody", password="a long enough password")
    for person in (annotator, no_role):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=person).key}")
        response = client.get(reverse(url_name))
        assert response.status_code == 403, person
        assert response.json()["detail"] == "This needs the Researcher role."
    prompt = corpus["rtp-lx-mini"].prompts.first()
    assert client.get(reverse("api:prompt-detail", args=[prompt.pk])).status_code == 403


def test_token_works(token_client, corpus):
    response = token_client.get(reverse("api:prompt-list"))
    assert response.status_code == 200
    assert response.json()["count"] == 7


@pytest.mark.django_db
def test_a_wrong_token_is_refused(corpus):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    response = client.get(reverse("api:prompt-list"))
    assert response.status_code == 401
    assert "Invalid token" in response.json()["detail"]


def test_session_works(user, corpus):
    client = APIClient()
    client.force_login(user)
    response = client.get(reverse("api:dataset-list"))
    assert response.status_code == 200
    assert [d["slug"] for d in response.json()["results"]] == ["ptp-mini", "rtp-lx-mini"]


def test_a_user_obtains_a_token_with_the_password_and_uses_it(user, corpus):
    anonymous = APIClient()
    response = anonymous.post(
        reverse("api:auth-token"), {"username": "reader", "password": "a long enough password"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert token == user.auth_token.key

    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anonymous.get(reverse("api:language-detail", args=["ar"])).json()["direction"] == "rtl"


def test_a_wrong_password_gets_no_token(user):
    response = APIClient().post(reverse("api:auth-token"), {"username": "reader", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()
