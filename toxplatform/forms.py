"""Forms whose data a service checks (again): the service's ApplicationError lands on the
fields it names, so a page shows a service's refusal the way it shows a form's own errors.

    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = form.submit(services.create_campaign, created_by=request.user)
        if campaign is not None:
            return redirect(...)
    # else: render the form again; form.errors holds what the service said (a 400)
"""
from __future__ import annotations

from collections.abc import Callable

from django import forms

from toxplatform.errors import ApplicationError


class ServiceForm(forms.Form):
    # A service's error key -> the form field it belongs to, where the names differ.
    SERVICE_FIELDS: dict[str, str] = {}

    @property
    def has_field_errors(self) -> bool:
        return any(name != forms.forms.NON_FIELD_ERRORS for name in self.errors)

    def service_arguments(self) -> dict:
        """The service's keyword arguments from cleaned_data."""
        return dict(self.cleaned_data)

    def submit(self, service: Callable, **extra):
        """service(**service_arguments(), **extra); None when the service refused (its error is
        then on the form)."""
        try:
            return service(**self.service_arguments(), **extra)
        except ApplicationError as error:
            self.add_service_errors(error)
            return None

    def field_for(self, key: str) -> str | None:
        name = self.SERVICE_FIELDS.get(key, key)
        return name if name in self.fields else None

    def add_service_errors(self, error: ApplicationError) -> None:
        """A detail that names a field with a message (text) goes on that field; the message,
        with every other detail, goes on the form unless every detail found its field."""
        left = {}
        for key, value in error.extra.items():
            field = self.field_for(key)
            if field and isinstance(value, str):
                self.add_error(field, value)
            else:
                left[key] = value
        if left or not error.extra:
            self.add_error(None, str(ApplicationError(error.message, left)))
