"""Login, roles, API tokens, the demo users command and the admin pages."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.views import View
from rest_framework.authtoken.models import Token

from tests.corpus.browse_data import PASSWORD, make_dataset, make_user
from toxplatform.accounts import services
from toxplatform.accounts.models import AnnotatorProfile, Role
from toxplatform.accounts.permissions import RoleRequiredMixin
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db
User = get_user_model()


# --- login / logout ---------------------------------------------------------------------


def test_login_form_signs_in_and_goes_where_it_was_asked(client):
    make_user("res", "Researcher")
    target = reverse("corpus:dataset-list")
    login_page = client.get(reverse("accounts:login") + f"?next={target}")
    assert login_page.status_code == 200
    assert f'name="next" value="{target}"' in login_page.content.decode()

    response = client.post(reverse("accounts:login"), {"username": "res", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == target
    assert client.get(target).status_code == 200


@pytest.mark.parametrize(
    ("role", "landing"),
    [("Researcher", "corpus:dataset-list"), ("Annotator", "annotations:index")],
)
def test_without_next_each_role_lands_on_its_own_start_page(client, role, landing):
    # Annotators must not land on the researcher-only corpus (a 403): they start at their
    # annotation work.
    make_user("someone", role)
    response = client.post(reverse("accounts:login"), {"username": "someone", "password": PASSWORD})
    assert response["Location"] == reverse(landing)
    assert client.get(reverse("accounts:home"))["Location"] == reverse(landing)
    assert client.get(response["Location"]).status_code == 200


def test_a_wrong_password_shows_an_error(client):
    make_user("res", "Researcher")
    response = client.post(reverse("accounts:login"), {"username": "res", "password": "wrong-password"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post_and_ends_the_session(client):
    make_user("res", "Researcher")
    client.login(username="res", password=PASSWORD)
    page = client.get(reverse("corpus:dataset-list")).content.decode()
    assert f'<form method="post" action="{reverse("accounts:logout")}">' in page
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    assert client.get(reverse("corpus:dataset-list")).status_code == 302


# --- profile and token --------------------------------------------------------------------


def test_profile_shows_roles_languages_and_the_token_which_can_be_replaced(client):
    user = services.create_user_with_role(
        username="ann", password=PASSWORD, role=Role.ANNOTATOR, languages=["ar", "de"]
    )
    old_key = Token.objects.get(user=user).key
    client.login(username="ann", password=PASSWORD)
    html = client.get(reverse("accounts:profile")).content.decode()
    assert old_key in html
    assert "Annotator" in html
    assert '<span lang="ar" dir="rtl">العربية</span>' in html

    assert client.get(reverse("accounts:token-rotate")).status_code == 405  # state changes only by POST
    response = client.post(reverse("accounts:token-rotate"), follow=True)
    new_key = Token.objects.get(user=user).key
    assert new_key != old_key
    assert new_key in response.content.decode() and old_key not in response.content.decode()


def test_profile_needs_login(client):
    response = client.get(reverse("accounts:profile"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


# --- services --------------------------------------------------------------------------------


def test_create_user_with_role_is_idempotent_and_resets_the_password():
    first = services.create_user_with_role(username="r", password="first-password", role=Role.RESEARCHER)
    again = services.create_user_with_role(username="r", password="second-password", role=Role.RESEARCHER)
    assert first.pk == again.pk
    assert User.objects.filter(username="r").count() == 1
    assert list(again.groups.values_list("name", flat=True)) == ["Researcher"]
    assert again.check_password("second-password")
    assert Token.objects.filter(user=again).count() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "Wizard"}, "Unknown role."),
        ({"role": Role.ANNOTATOR, "languages": ["en", "xx-unknown"]}, "Unknown language codes."),
        ({"role": Role.RESEARCHER, "password": "short"}, "The password is not acceptable."),
    ],
)
def test_bad_account_input_is_an_application_error_and_changes_nothing(kwargs, message):
    kwargs = {"username": "newbie", "password": "long-enough-password", **kwargs}
    with pytest.raises(ApplicationError) as error:
        services.create_user_with_role(**kwargs)
    assert error.value.message == message
    assert not User.objects.filter(username="newbie").exists()
    assert not AnnotatorProfile.objects.exists()


# --- create_demo_users -----------------------------------------------------------------------


def test_create_demo_users_is_idempotent(client, capsys):
    call_command("create_demo_users", "--password", "demo-password-1")
    first_tokens = dict(Token.objects.values_list("user__username", "key"))
    call_command("create_demo_users", "--password", "demo-password-1")
    output = capsys.readouterr().out

    assert User.objects.count() == 4
    assert dict(Token.objects.values_list("user__username", "key")) == first_tokens  # kept, not replaced
    assert set(first_tokens) == {"researcher", "annotator", "annotator2", "admin"}
    for username, key in first_tokens.items():
        assert f"{username}" in output and key in output

    researcher, annotator, admin = (User.objects.get(username=name) for name in ("researcher", "annotator", "admin"))
    assert list(researcher.groups.values_list("name", flat=True)) == ["Researcher"]
    assert list(annotator.groups.values_list("name", flat=True)) == ["Annotator"]
    assert admin.is_superuser and admin.is_staff
    assert not (researcher.is_staff or annotator.is_staff)
    assert set(annotator.annotator_profile.languages.values_list("code", flat=True)) == {"en", "ar", "de", "hi"}

    make_dataset()
    assert client.login(username="researcher", password="demo-password-1")
    assert client.get(reverse("corpus:dataset-list")).status_code == 200
    assert client.login(username="annotator", password="demo-password-1")
    assert client.get(reverse("corpus:dataset-list")).status_code == 403


def test_create_demo_users_rejects_a_bad_password():
    with pytest.raises(CommandError, match="password is not acceptable"):
        call_command("create_demo_users", "--password", "short")
    assert not User.objects.exists()


# --- permission helper for class-based views -------------------------------------------------


class ResearchOnlyView(RoleRequiredMixin, View):
    required_roles = (Role.RESEARCHER,)

    def get(self, request):
        return HttpResponse("secret")


def test_role_required_mixin():
    factory = RequestFactory()
    request = factory.get("/research/")
    request.user = AnonymousUser()
    assert ResearchOnlyView.as_view()(request).status_code == 302

    request.user = make_user("ann", "Annotator")
    with pytest.raises(PermissionDenied):
        ResearchOnlyView.as_view()(request)

    request.user = make_user("res", "Researcher")
    assert ResearchOnlyView.as_view()(request).content == b"secret"


# --- admin ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["corpus/language", "corpus/harmcategory", "corpus/dataset", "corpus/prompt", "corpus/promptlabel",
              "accounts/annotatorprofile"]
)
def test_admin_lists_and_change_pages_work(admin_client, model):
    make_dataset()
    services.create_user_with_role(username="ann", password=PASSWORD, role=Role.ANNOTATOR, languages=["en"])
    app_label, model_name = model.split("/")
    changelist = admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    assert changelist.status_code == 200
    first = changelist.context["cl"].result_list[0]
    assert admin_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[first.pk])).status_code == 200
    # Search runs too (search_fields point at real columns).
    assert admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"), {"q": "e"}).status_code == 200
