"""Pages: an ApplicationError that a view raises is a 400 with its message and details,
rendered in one place (the API has its own handler in toxplatform/api.py, commands in
toxplatform/commands.py). Downloads (views marked with `plain_text_errors`) answer in
plain text, which is what a script fetching a CSV can read."""
from django.http import HttpResponseBadRequest
from django.shortcuts import render

from toxplatform.errors import ApplicationError


def plain_text_errors(view):
    """Mark a view whose ApplicationError should be a text/plain 400 (file downloads)."""
    view.application_error_as_text = True
    return view


class ApplicationErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError):
            return None
        view = getattr(request.resolver_match, "func", None)
        if getattr(view, "application_error_as_text", False):
            return HttpResponseBadRequest(str(exception), content_type="text/plain; charset=utf-8")
        return render(request, "400.html", {"error": exception}, status=400)
