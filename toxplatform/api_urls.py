"""The REST API under /api/: one router that every app registers its viewsets on.

To add an app's endpoints: give the app an `api.py` with a `register(router)` function
that calls `router.register(prefix, ViewSet, basename=...)`, and list the module in
API_MODULES. URL names are namespaced: reverse("api:<basename>-list"), "api:<basename>-detail".
"""
from importlib import import_module

from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from toxplatform.accounts.api import ObtainAuthTokenView

API_MODULES = [
    "toxplatform.corpus.api",
    "evaluation.api",
    "annotations.api",
    "evaluation.method_board_views",
    "evaluation.scorer_trust.api",
]

router = DefaultRouter()
for module_name in API_MODULES:
    import_module(module_name).register(router)

app_name = "api"
urlpatterns = [
    path("auth/token/", ObtainAuthTokenView.as_view(), name="auth-token"),
    # Signed-in users only (SPECTACULAR_SETTINGS SERVE_PERMISSIONS); a browser without a
    # session is sent to the login page rather than shown a 401.
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", login_required(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    *router.urls,
]
