from django import forms
from django.contrib.auth.forms import AuthenticationForm

from toxplatform.accounts import throttling


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, saying so when failed sign-ins are throttled (not "wrong password")."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if throttling.is_blocked(self.request, username):
            raise forms.ValidationError(throttling.message(), code="throttled")
        cleaned = super().clean()
        throttling.record_success(self.request, username)
        return cleaned

    @property
    def throttled(self) -> bool:
        return any(error.code == "throttled" for error in self.errors.as_data().get("__all__", []))
