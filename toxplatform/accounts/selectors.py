from toxplatform.accounts.models import Role


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
