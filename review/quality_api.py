"""REST endpoints for quality control: the check catalogue and starting/following re-transcription.

A clip's own checks and the model's suggestion come with its detail (`/api/entries/<id>`); the
list filters by `?check=<code>` and orders by `?ordering=priority`.
"""
from __future__ import annotations

from celery.result import AsyncResult
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from . import selectors
from .api import FILTER_PARAMETERS, ReviewApiView, _error
from .quality import CHECKS
from .quality_selectors import AsrModelNotFound, asr_model_dir, asr_model_id, check_counts
from .tasks import clips_transcribe

MAX_TRANSCRIBE_CLIPS = 100_000


class CheckInfoSerializer(serializers.Serializer):
    code = serializers.CharField()
    kind = serializers.ChoiceField(choices=["audio", "transcript"])
    title = serializers.CharField()
    clips = serializers.IntegerField(help_text="clips flagged (cached by scanclips, saves and re-transcription)")


class QualityChecksApi(ReviewApiView):
    @extend_schema(responses={200: CheckInfoSerializer(many=True)})
    def get(self, request):
        counts = check_counts()
        return Response([{"code": c.code, "kind": c.kind, "title": c.title, "clips": counts.get(c.code, 0)}
                         for c in CHECKS.values()])


class TranscribeInputSerializer(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, help_text="a faster-whisper directory; default: the live model, else the base")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_TRANSCRIBE_CLIPS)


class TranscribeStartedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    clips = serializers.IntegerField()
    model = serializers.CharField()


class TranscribeApi(ReviewApiView):
    """Queue a re-transcription of the clips matching the filter (query string, as for the list)."""

    @extend_schema(parameters=FILTER_PARAMETERS, request=TranscribeInputSerializer,
                   responses={202: TranscribeStartedSerializer})
    def post(self, request):
        body = TranscribeInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        choice = body.validated_data.get("model") or None
        try:
            model_dir = asr_model_dir(choice)
        except AsrModelNotFound as e:
            return Response({"model": [str(e)]}, status=400)
        ids = selectors.clip_ids(self.filters())[: body.validated_data.get("limit", MAX_TRANSCRIBE_CLIPS)]
        if not ids:
            return _error(400, "no_clips", "No clip matches the filter: nothing to re-transcribe.")
        task = clips_transcribe.delay(ids, str(model_dir) if choice else None)
        return Response({"task_id": task.id, "clips": len(ids), "model": asr_model_id(model_dir)}, status=202)


class TranscribeStatusSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField(help_text="PENDING, STARTED, PROGRESS, SUCCESS or FAILURE")
    done = serializers.IntegerField(required=False)
    total = serializers.IntegerField(required=False)
    failed = serializers.IntegerField(required=False)
    transcribed = serializers.IntegerField(required=False, help_text="when finished")
    model = serializers.CharField(required=False, help_text="when finished")


class TranscribeStatusApi(ReviewApiView):
    @extend_schema(responses={200: TranscribeStatusSerializer})
    def get(self, request, task_id: str):
        result = AsyncResult(task_id, app=clips_transcribe.app)
        info = result.info if isinstance(result.info, dict) else ({"error": str(result.info)} if result.info else {})
        return Response({"task_id": task_id, "state": result.state, **info})
