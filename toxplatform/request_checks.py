"""Request checks that hold for every page and API route."""
import json

from django.http import HttpResponseBadRequest, JsonResponse

NUL_MESSAGE = "The request contains a NUL character (\\0), which no field accepts."


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class RejectNulMiddleware:
    """A 400 for NUL characters in the path, the query string, form fields or a JSON body.

    PostgreSQL cannot store or even compare them ("A string literal cannot contain NUL"), so
    without this every lookup by a query parameter was a 500. Nothing a user types needs one;
    a model's output (which may hold them) never comes in through a request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._found(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"message": NUL_MESSAGE, "extra": {}}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _found(request) -> bool:
        if "\0" in request.path or any(_has_nul(k) or any(_has_nul(v) for v in vs) for k, vs in request.GET.lists()):
            return True
        if request.method in ("POST", "PUT", "PATCH"):
            content_type = request.content_type or ""
            if content_type == "application/json":
                try:
                    return _has_nul(json.loads(request.body or b"null"))
                except (ValueError, UnicodeDecodeError):
                    return False  # the view reports malformed JSON itself
            if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                return any(_has_nul(k) or any(_has_nul(v) for v in vs) for k, vs in request.POST.lists())
        return False
