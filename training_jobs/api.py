"""REST for training runs, thin: parse, call a service or selector, answer.

POST /api/train                 start a run (TrainConfig fields; empty body = defaults) -> 201, 409
GET  /api/train/status          the active run, else the latest ({"status": "idle"} when none)
GET  /api/train/logs?offset=N   log lines after N and the next offset (active or latest run, or ?run=)
GET  /api/runs, /api/runs/{id}  history, one run with its metric history
POST /api/runs/{id}/pause|resume|stop
GET  /api/models, /api/models/{id or name}      the registry; DELETE /api/models/{id}?confirm=<name>
GET  /api/models/compare?a=&b=                   two versions clip by clip
POST /api/models/{id}/export {"quantization"}    queue CTranslate2 export + faster-whisper verification -> 202
POST /api/models/{id}/promote {"force", "quantization"}   queue export/guard/switch -> 202 (409 while busy)
GET  /api/models/tasks/{task_id}                 a queued export/promotion: stage, clips scored, result
POST /api/models/rollback                        back to the previous live model (in the request)
GET  /api/models/live                            what S2S_LIVE_MODEL_DIR serves now, and the running action
"""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from training_jobs import selectors, services
from training_jobs.models import ModelVersion, TrainingRun
from training_jobs.pipeline.export import QUANTIZATIONS
from training_jobs.serializers import (
    LogPageSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    RunDetailSerializer,
    RunSerializer,
    TrainConfigSerializer,
)


class RunApiError(APIException):
    """A service's RunError as a JSON answer with its status code (400 / 409)."""

    def __init__(self, error: services.RunError):
        self.status_code = error.status_code
        detail = {"detail": str(error), "code": type(error).__name__}
        if getattr(error, "active_run_id", None):
            detail["active_run"] = error.active_run_id
        if getattr(error, "holder", None):  # DeployBusy: what holds the deployment slot
            detail["running"] = {k: error.holder.get(k) for k in ("action", "version", "task_id", "since")}
        super().__init__()
        self.detail = detail  # as is: DRF would turn the run id into a string


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except TrainingRun.DoesNotExist:
        raise Http404("no such run") from None
    except ModelVersion.DoesNotExist:
        raise Http404("no such model version") from None
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


# -- model registry -----------------------------------------------------------------------------

class ModelListApi(ListAPIView):
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        return selectors.model_list()


class ModelDetailApi(APIView):
    @extend_schema(responses={200: ModelVersionDetailSerializer})
    def get(self, request, version: str):
        return Response(ModelVersionDetailSerializer(_call(selectors.model_get, version_id=version)).data)

    @extend_schema(parameters=[OpenApiParameter("confirm", str, description="the version's name")],
                   responses={204: None})
    def delete(self, request, version: str):
        target = _call(selectors.model_get, version_id=version)
        _call(services.model_delete, version=target, confirm=request.query_params.get("confirm", ""), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelCompareApi(APIView):
    class QuerySerializer(serializers.Serializer):
        a = serializers.CharField()
        b = serializers.CharField()

    @extend_schema(parameters=[OpenApiParameter("a", str), OpenApiParameter("b", str)])
    def get(self, request):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        a = _call(selectors.model_get, version_id=query.validated_data["a"])
        b = _call(selectors.model_get, version_id=query.validated_data["b"])
        return Response(selectors.model_compare(a, b))


class ModelTaskStartedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    action = serializers.ChoiceField(choices=list(services.MODEL_TASKS))
    version = serializers.CharField()
    status_url = serializers.CharField(help_text="GET it for the stage, clips scored and the result")


class ModelTaskStatusSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField(help_text="PENDING, STARTED, PROGRESS, SUCCESS or FAILURE")
    action = serializers.CharField(required=False)
    version = serializers.CharField(required=False)
    step = serializers.CharField(required=False, help_text="starting, exporting, verifying, comparing, switching, done")
    done = serializers.IntegerField(required=False, help_text="clips scored in this step")
    total = serializers.IntegerField(required=False)
    ok = serializers.BooleanField(required=False, help_text="when finished: true, or false with `error`")
    message = serializers.CharField(required=False)
    error = serializers.CharField(required=False, help_text="the refusal or failure, e.g. PromotionRefused's reason")
    code = serializers.CharField(required=False)
    holds_slot = serializers.BooleanField(help_text="false while still running: its worker is gone")


def _enqueue_answer(request, action: str, version: str, options: dict) -> Response:
    target = _call(selectors.model_get, version_id=version)
    task_id = _call(services.model_action_enqueue, action=action, version=target, user=request.user, **options)
    return Response({"task_id": task_id, "action": action, "version": target.name,
                     "status_url": reverse("api-model-task", args=[task_id])}, status=status.HTTP_202_ACCEPTED)


class ModelExportApi(APIView):
    class ExportInputSerializer(serializers.Serializer):
        quantization = serializers.ChoiceField(choices=QUANTIZATIONS, required=False)

    @extend_schema(request=ExportInputSerializer, responses={202: ModelTaskStartedSerializer})
    def post(self, request, version: str):
        data = self.ExportInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        return _enqueue_answer(request, "export", version, data.validated_data)


class ModelPromoteApi(APIView):
    class PromoteInputSerializer(serializers.Serializer):
        force = serializers.BooleanField(required=False, default=False)
        quantization = serializers.ChoiceField(choices=QUANTIZATIONS, required=False)

    @extend_schema(request=PromoteInputSerializer, responses={202: ModelTaskStartedSerializer})
    def post(self, request, version: str):
        data = self.PromoteInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        return _enqueue_answer(request, "promote", version, data.validated_data)


class ModelTaskStatusApi(APIView):
    @extend_schema(responses={200: ModelTaskStatusSerializer})
    def get(self, request, task_id: str):
        return Response(selectors.model_task_status(task_id))


class ModelRollbackApi(APIView):
    @extend_schema(request=None)
    def post(self, request):
        switch = _call(services.model_rollback, user=request.user)
        return Response({"live": switch.live, "previous": switch.previous})


class LiveStatusApi(APIView):
    def get(self, request):
        return Response({**selectors.live_status(), "action": selectors.deploy_action_current()})
