"""Failed sign-ins are throttled on the login page, the API token endpoint and the admin;
anonymous API use is rate limited; the API schema and docs are for signed-in users."""
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from toxplatform.accounts import throttling
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role

pytestmark = pytest.mark.django_db

PASSWORD = "throttle-test-password"
LIMIT = 5


@pytest.fixture
def researcher(db):
    return create_user_with_role(username="res", password=PASSWORD, role=Role.RESEARCHER)


def login(client, password, username="res", **extra):
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, **extra)


def token(client, password, username="res", **extra):
    return client.post(reverse("api:auth-token"), {"username": username, "password": password}, format="json", **extra)


def test_the_sixth_wrong_password_on_the_login_page_is_refused_with_a_clear_message(researcher):
    client = Client()
    for _ in range(LIMIT):
        response = login(client, "wrong-password")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    response = login(client, "wrong-password")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    # Even the right password is refused now: a lucky guess teaches nothing.
    response = login(client, PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_the_lock_is_per_account_and_ends_with_the_window(researcher):
    create_user_with_role(username="other", password=PASSWORD, role=Role.RESEARCHER)
    for _ in range(LIMIT):
        login(Client(), "wrong-password")
    assert login(Client(), PASSWORD).status_code == 429
    assert login(Client(), PASSWORD, username="other").status_code == 302  # another account is not locked
    cache.clear()  # the window has passed
    assert login(Client(), PASSWORD).status_code == 302


def test_a_right_password_clears_the_account_count(researcher):
    for _ in range(LIMIT - 1):
        login(Client(), "wrong-password")
    assert login(Client(), PASSWORD).status_code == 302
    for _ in range(LIMIT - 1):
        login(Client(), "wrong-password")
    assert login(Client(), PASSWORD).status_code == 302


def test_one_address_trying_many_accounts_is_throttled(researcher):
    client = Client()
    for number in range(20):
        login(client, "wrong-password", username=f"guess{number}")
    response = login(client, PASSWORD)
    assert response.status_code == 429
    # Another address still gets in.
    assert login(Client(REMOTE_ADDR="10.1.2.3"), PASSWORD).status_code == 302


def test_the_sixth_wrong_password_for_an_api_token_is_refused_with_429(researcher):
    client = APIClient()
    for _ in range(LIMIT):
        response = token(client, "wrong-password")
        assert response.status_code == 400
    response = token(client, "wrong-password")
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Too many failed sign-in attempts")
    assert int(response["Retry-After"]) > 0
    assert token(client, PASSWORD).status_code == 429
    # Failures on the token endpoint lock the login page too (one count per account).
    assert login(Client(REMOTE_ADDR="10.9.9.9"), PASSWORD).status_code == 429


def test_the_admin_login_is_throttled_too(researcher):
    researcher.is_staff = True
    researcher.save()
    for _ in range(LIMIT):
        login(Client(), "wrong-password")
    response = Client().post(reverse("admin:login"), {"username": "res", "password": PASSWORD})
    assert response.status_code == 200  # the admin's own form, with its own error
    assert "_auth_user_id" not in response.wsgi_request.session


def test_counts_are_kept_in_the_shared_cache(researcher, settings):
    """Every web process must see the same counts: not a per-process memory cache."""
    assert "locmem" not in settings.CACHES["default"]["BACKEND"]
    login(Client(), "wrong-password")
    key = next(key for key, _ in throttling._keys(None, "res"))
    assert cache.get(key) == 1


def test_behind_the_proxy_the_client_address_comes_from_x_forwarded_for(researcher, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for number in range(20):
        login(Client(), "wrong-password", username=f"guess{number}", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert login(Client(), PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 302


def test_anonymous_api_use_is_rate_limited(researcher):
    client = APIClient()
    statuses = [token(client, PASSWORD).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


def test_api_schema_and_docs_need_a_signed_in_user(researcher):
    anonymous = APIClient()
    assert anonymous.get(reverse("api:schema")).status_code == 401
    response = Client().get(reverse("api:docs"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    signed_in = Client()
    signed_in.force_login(researcher)
    assert signed_in.get(reverse("api:docs")).status_code == 200
    assert signed_in.get(reverse("api:schema")).status_code == 200
