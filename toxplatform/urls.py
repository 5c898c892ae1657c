from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from toxplatform import health
from toxplatform.accounts.views import home

admin.site.site_header = admin.site.site_title = "ToxPlatform administration"
admin.site.index_title = "Models, jobs, corpus and users"

urlpatterns = [
    # Each role lands on its own start page (annotators cannot open the corpus).
    path("", home, name="home"),
    path("accounts/", include("toxplatform.accounts.urls")),
    path("corpus/", include("toxplatform.corpus.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("annotations/", include("annotations.urls")),
    path("scorer-trust/", include("evaluation.scorer_trust.urls")),
    # A short address for readers; the pages live under evaluation/leaderboards/.
    path("leaderboards/", RedirectView.as_view(pattern_name="evaluation:leaderboard-list", query_string=True)),
    path("api/", include("toxplatform.api_urls")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
]
