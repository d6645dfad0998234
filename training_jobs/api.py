"""REST for training runs, thin: parse, call a service or selector, answer.

POST /api/train                 start a run (TrainConfig fields; empty body = defaults) -> 201, 409
GET  /api/train/status          the active run, else the latest ({"status": "idle"} when none)
GET  /api/train/logs?offset=N   log lines after N and the next offset (active or latest run, or ?run=)
GET  /api/runs, /api/runs/{id}  history, one run with its metric history
POST /api/runs/{id}/pause|resume|stop
"""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from training_jobs import selectors, services
from training_jobs.models import TrainingRun
from training_jobs.serializers import LogPageSerializer, RunDetailSerializer, RunSerializer, TrainConfigSerializer


class RunApiError(APIException):
    """A service's RunError as a JSON answer with its status code (400 / 409)."""

    def __init__(self, error: services.RunError):
        self.status_code = error.status_code
        detail = {"detail": str(error), "code": type(error).__name__}
        if getattr(error, "active_run_id", None):
            detail["active_run"] = error.active_run_id
        super().__init__()
        self.detail = detail  # as is: DRF would turn the run id into a string


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except TrainingRun.DoesNotExist:
        raise Http404("no such run") from None
    except services.RunError as e:
        raise RunApiError(e) from None


class TrainStartApi(APIView):
    @extend_schema(request=TrainConfigSerializer, responses={201: RunDetailSerializer})
    def post(self, request):
        data = TrainConfigSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        run = _call(services.run_start, config=data.validated_data, user=request.user)
        return Response(RunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainStatusApi(APIView):
    @extend_schema(responses={200: RunDetailSerializer})
    def get(self, request):
        run = selectors.run_current()
        if run is None:
            return Response({"id": None, "status": "idle"})
        return Response(RunDetailSerializer(run).data)


class TrainLogsApi(APIView):
    class QuerySerializer(serializers.Serializer):
        offset = serializers.IntegerField(min_value=0, required=False, default=0)
        run = serializers.IntegerField(min_value=1, required=False)
        limit = serializers.IntegerField(min_value=1, max_value=selectors.LOG_PAGE, required=False,
                                         default=selectors.LOG_PAGE)

    @extend_schema(parameters=[OpenApiParameter("offset", int), OpenApiParameter("run", int),
                               OpenApiParameter("limit", int)], responses={200: LogPageSerializer})
    def get(self, request):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        if "run" in q:
            run = _call(selectors.run_get, run_id=q["run"])
        else:
            run = selectors.run_current()
        if run is None:
            return Response({"run": None, "offset": q["offset"], "next_offset": q["offset"], "lines": []})
        lines, next_offset = selectors.run_log_after(run.pk, q["offset"], q["limit"])
        return Response({"run": run.pk, "status": run.status, "offset": q["offset"], "next_offset": next_offset,
                         "lines": lines})


class RunListApi(ListAPIView):
    serializer_class = RunSerializer

    def get_queryset(self):
        return selectors.run_list()


class RunDetailApi(APIView):
    @extend_schema(responses={200: RunDetailSerializer})
    def get(self, request, run_id: int):
        return Response(RunDetailSerializer(_call(selectors.run_get, run_id=run_id)).data)


class RunActionApi(APIView):
    """POST /api/runs/{id}/pause|resume|stop: the same services the websocket calls."""

    action = ""
    ACTIONS = {"pause": services.run_pause, "resume": services.run_resume, "stop": services.run_stop}

    @extend_schema(request=None, responses={200: RunDetailSerializer})
    def post(self, request, run_id: int):
        run = _call(self.ACTIONS[self.action], run_id=run_id, user=request.user)
        return Response(RunDetailSerializer(run).data)
