from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from toxplatform.accounts import selectors, services
from toxplatform.accounts.forms import ThrottledAuthenticationForm
from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import has_any_role


def landing_url(user) -> str:
    """Where a user starts: researchers at the corpus, annotators at their annotation work."""
    if has_any_role(user, [Role.RESEARCHER]):
        return reverse("corpus:dataset-list")
    if has_any_role(user, [Role.ANNOTATOR]):
        try:
            return reverse("annotations:index")
        except NoReverseMatch:  # the annotations pages are not wired in yet
            pass
    return reverse("accounts:profile")


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
        return response

    def get_default_redirect_url(self):
        # Without ?next=, send each role to its own start page (an annotator must not land on a 403).
        return landing_url(self.request.user)


@login_required
def home(request):
    return redirect(landing_url(request.user))


@login_required
def profile(request):
    user = request.user
    return render(
        request,
        "accounts/profile.html",
        {
            "roles": sorted(selectors.user_roles(user)),
            "languages": selectors.annotator_languages(user),
            "token": selectors.api_token(user),
        },
    )


@login_required
@require_POST
def token_rotate(request):
    services.rotate_api_token(user=request.user)
    messages.success(request, "A new API token was created; the old one no longer works.")
    return redirect("accounts:profile")
