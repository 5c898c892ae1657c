from rest_framework.authtoken.models import Token

from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Language


def user_roles(user) -> set[str]:
    """Role names of a user; superusers hold every role."""
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {role.value for role in Role}
    # Cached on the user object: templates ask several times per request.
    if not hasattr(user, "_role_names"):
        user._role_names = set(user.groups.values_list("name", flat=True))
    return user._role_names


def annotator_languages(user) -> list[Language]:
    """Languages the user reads as an annotator (empty without a profile)."""
    return list(Language.objects.filter(annotatorprofile__user=user).order_by("english_name"))


def api_token(user) -> Token | None:
    return Token.objects.filter(user=user).first()
