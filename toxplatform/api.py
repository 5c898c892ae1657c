"""API-wide pieces: ApplicationError rendered as a 400 like any validation error; pagination."""
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from toxplatform.errors import ApplicationError


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=400)
    return drf_exception_handler(exc, context)


class Pagination(PageNumberPagination):
    """Every list: 50 rows a page unless ?page_size= asks for up to 500."""

    page_size_query_param = "page_size"
    max_page_size = 500
