"""The methods leaderboard as a page, a CSV file and an API endpoint (evaluation/method_board.py)."""
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from evaluation import exports, method_board
from evaluation.models import EvaluationJob
from toxplatform.accounts.permissions import CanReadLeaderboards, leaderboard_access
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError
from toxplatform.middleware import plain_text_errors


def _choices() -> dict:
    """Models and datasets that have finished jobs, for the page's filter form."""
    done = EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE)
    return {
        "models": sorted(set(done.values_list("model__name", flat=True))),
        "datasets": sorted(set(done.values_list("dataset__slug", flat=True))),
    }


@leaderboard_access
def methods_leaderboard(request, code: str):
    language = get_object_or_404(Language, code=code)
    context = {"language": language, "query": request.GET, **_choices()}
    if not request.GET.get("model") or not request.GET.get("dataset"):
        return render(request, "evaluation/method_board.html", context)
    board = method_board.board_from_query(language, request.GET)  # a bad option: the error middleware's 400
    return render(request, "evaluation/method_board.html", context | {"board": board, "chart": board.chart()})


@plain_text_errors
@leaderboard_access
def methods_leaderboard_csv(request, code: str):
    language = get_object_or_404(Language, code=code)
    board = method_board.board_from_query(language, request.GET)
    response = StreamingHttpResponse(exports.to_csv(method_board.board_csv_rows(board)),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="methods-{language.code}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class MethodLeaderboardViewSet(viewsets.ViewSet):
    """GET /api/method-leaderboard/?language=hi&model=M&dataset=D[&scorer=&category=&perplexity_scorer=&k=&rule=]"""

    permission_classes = [CanReadLeaderboards]

    @extend_schema(
        parameters=[OpenApiParameter(name, str, required=name in ("language", "model", "dataset"))
                    for name in ("language", "model", "dataset", "scorer", "category", "perplexity_scorer", "k", "rule")],
        responses=OpenApiTypes.OBJECT,
    )
    def list(self, request):
        code = request.query_params.get("language", "")
        language = Language.objects.filter(code=code).first()
        if language is None:
            raise ApplicationError("No methods leaderboard for these options", {"language": f"unknown language {code!r}"})
        board = method_board.board_from_query(language, request.query_params)
        return Response({
            "language": language.code, "model": board.model.name, "dataset": board.dataset.slug,
            "scorer": board.scorer, "category": board.category, "perplexity_scorer": board.perplexity_scorer,
            "k": board.k, "rule": board.rule, "notes": board.notes, "methods": method_board.board_records(board),
        })


def register(router) -> None:
    router.register("method-leaderboard", MethodLeaderboardViewSet, basename="method-leaderboard")
