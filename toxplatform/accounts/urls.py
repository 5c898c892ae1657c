from django.contrib.auth import views as auth_views
from django.urls import path

from toxplatform.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("profile/", views.profile, name="profile"),
    path("profile/token/", views.token_rotate, name="token-rotate"),
    # Role-aware start page; the project's "/" can point here instead of at the corpus.
    path("home/", views.home, name="home"),
]
