"""Every corpus endpoint needs a user: a token (scripts) or a session (the browsable API)."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

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
