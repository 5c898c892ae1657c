from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="corpus:dataset-list", permanent=False), name="home"),
    path("accounts/", include("toxplatform.accounts.urls")),
    path("corpus/", include("toxplatform.corpus.urls")),
    path("api/", include("toxplatform.api_urls")),
    path("admin/", admin.site.urls),
]
