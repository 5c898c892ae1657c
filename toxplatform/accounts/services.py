"""Accounts: users with roles, annotator language profiles, API tokens.

Every function here is idempotent, so commands that call them can run again safely.
"""
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from toxplatform.accounts.models import AnnotatorProfile, Role
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError


def _role_group(role: str) -> Group:
    if role not in Role.values:
        raise ApplicationError("Unknown role.", {"role": role, "known": ", ".join(Role.values)})
    # The groups come from a migration; get_or_create keeps a flushed test database working.
    group, _ = Group.objects.get_or_create(name=role)
    return group


@transaction.atomic
def create_user_with_role(
    *,
    username: str,
    password: str,
    role: str | None = None,
    superuser: bool = False,
    email: str = "",
    languages: Iterable[str] = (),
):
    """Create the user or bring an existing one in line: password, role, flags, languages."""
    if not username:
        raise ApplicationError("A username is required.")
    try:
        validate_password(password)
    except ValidationError as exc:
        raise ApplicationError("The password is not acceptable.", {"reason": " ".join(exc.messages)}) from exc
    group = _role_group(role) if role else None

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    if superuser:
        user.is_staff = True
        user.is_superuser = True
    user.save()
    if group is not None:
        user.groups.add(group)
    if role == Role.ANNOTATOR or languages:
        set_annotator_languages(user=user, codes=languages)
    ensure_api_token(user=user)
    return user


def set_annotator_languages(*, user, codes: Iterable[str]) -> AnnotatorProfile:
    """Replace the languages an annotator reads; unknown codes are an error and change nothing."""
    codes = list(dict.fromkeys(codes))
    languages = list(Language.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {language.code for language in languages})
    if unknown:
        raise ApplicationError("Unknown language codes.", {"codes": ", ".join(unknown)})
    profile, _ = AnnotatorProfile.objects.get_or_create(user=user)
    profile.languages.set(languages)
    return profile


def ensure_api_token(*, user) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def rotate_api_token(*, user) -> Token:
    """A new key; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)
