"""Health probe for docker-compose and load balancers: 200 "ok" once the database answers.
`/healthz?workers=1` also reports the Celery workers seen per queue, as JSON (a heartbeat
table read; the plain probe stays one SELECT 1)."""
import logging

from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("health check: database unavailable")
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    if request.GET.get("workers"):
        from evaluation.workers import health_report

        return JsonResponse({"database": "ok", **health_report()})
    return HttpResponse("ok", content_type="text/plain")
