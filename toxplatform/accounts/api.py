"""API views of the accounts app."""
from django.conf import settings
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.throttling import AnonRateThrottle

from toxplatform.accounts import throttling


class ObtainAuthTokenView(ObtainAuthToken):
    """POST username + password -> token, behind the anonymous rate limit and the failed
    sign-in throttle (DRF's own view turns throttling off)."""

    throttle_classes = [AnonRateThrottle]

    def post(self, request, *args, **kwargs):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        if throttling.is_blocked(request, username):
            raise Throttled(wait=settings.LOGIN_FAILURE_WINDOW_S, detail=throttling.message())
        response = super().post(request, *args, **kwargs)
        throttling.record_success(request, username)
        return response
