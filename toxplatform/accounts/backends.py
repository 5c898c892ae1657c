"""Authentication backend: Django's ModelBackend behind the failed sign-in throttle."""
from django.contrib.auth.backends import ModelBackend, UserModel
from django.core.exceptions import PermissionDenied

from toxplatform.accounts import throttling


class ThrottledModelBackend(ModelBackend):
    """Refuses every sign-in of a throttled account or address (login page, API token, admin):
    PermissionDenied stops authenticate() before the password is checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(UserModel.USERNAME_FIELD)
        if throttling.is_blocked(request, username):
            raise PermissionDenied(throttling.message())
        return super().authenticate(request, username=username, password=password, **kwargs)
