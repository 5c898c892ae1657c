"""Annotation API: campaigns for researchers (list, create, detail, every judgment), and an
annotator's own queue (next item, the item, answer, skip) with the same rules as the pages.

An annotator asking for an assignment that is not theirs gets 404, as on the pages."""
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from annotations import exports, selectors, services
from annotations.models import Assignment, Campaign
from annotations.serializers import (
    AnswerSerializer,
    CampaignCreateSerializer,
    CampaignSerializer,
    NextSerializer,
    SkipSerializer,
    work_item,
)
from toxplatform.accounts.permissions import ANNOTATOR_API, RESEARCHER_API
from toxplatform.corpus.api import APPLICATION_ERROR_SCHEMA


class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Annotation campaigns (Researcher role)."""

    serializer_class = CampaignSerializer
    permission_classes = RESEARCHER_API

    def get_queryset(self):
        return Campaign.objects.prefetch_related("jobs", "languages", "categories", "annotators").order_by("-created_at")

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer, 400: APPLICATION_ERROR_SCHEMA})
    def create(self, request, *args, **kwargs):
        serializer = CampaignCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["selection_mode"] = data.pop("selection")
        campaign = services.create_campaign(**data, created_by=request.user)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})
    @action(detail=True)
    def judgments(self, request, pk=None):
        """Every version of every judgment (as the JSONL export), paged."""
        campaign = self.get_object()
        records = list(exports.judgment_records(campaign))
        page = self.paginate_queryset(records)
        return self.get_paginated_response(page)


class AssignmentViewSet(viewsets.GenericViewSet):
    """The signed-in annotator's own items (Annotator role)."""

    permission_classes = ANNOTATOR_API
    serializer_class = AnswerSerializer
    lookup_value_regex = r"[0-9]+"
    queryset = Assignment.objects.none()  # for the schema's path types; get_queryset is what runs

    def get_queryset(self):
        return Assignment.objects.filter(annotator=self.request.user)

    def _own(self, pk) -> Assignment:
        try:
            return services.own_assignment(pk, self.request.user)
        except services.NotFound:
            raise Http404 from None

    @extend_schema(responses={200: dict})
    def retrieve(self, request, pk=None):
        return Response(work_item(selectors.workspace(self._own(pk))))

    @extend_schema(request=NextSerializer, responses={200: dict, 204: None})
    @action(detail=False, methods=["post"])
    def next(self, request):
        """The item held in this campaign or a newly claimed one; 204 with the reason when none."""
        serializer = NextSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            campaign = services.assignment.enrolled_campaign(serializer.validated_data["campaign"], request.user)
        except services.NotFound:
            raise Http404 from None
        claim = services.next_assignment(campaign=campaign, annotator=request.user)
        if claim.assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT, headers={"X-Queue-State": claim.reason})
        return Response(work_item(selectors.workspace(claim.assignment)))

    @extend_schema(request=AnswerSerializer, responses={201: dict, 400: APPLICATION_ERROR_SCHEMA})
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        serializer = AnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            judgment = services.submit_judgment(assignment_id=pk, annotator=request.user,
                                                data={k: str(v) for k, v in serializer.validated_data["answer"].items()},
                                                time_ms=serializer.validated_data.get("time_ms"))
        except services.NotFound:
            raise Http404 from None
        return Response({"assignment": judgment.assignment_id, "version": judgment.version, "answer": judgment.answer},
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=SkipSerializer, responses={200: dict, 400: APPLICATION_ERROR_SCHEMA})
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        serializer = SkipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            assignment = services.skip(assignment_id=pk, annotator=request.user, **serializer.validated_data)
        except services.NotFound:
            raise Http404 from None
        return Response({"assignment": assignment.pk, "state": assignment.state, "reason": assignment.skip_reason})


def register(router):
    router.register("campaigns", CampaignViewSet, basename="campaign")
    router.register("assignments", AssignmentViewSet, basename="assignment")
