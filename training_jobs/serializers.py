"""REST shapes. The config serializer is generated from `TrainConfig`, so a new training option
appears in the API (and its schema) without touching this file."""
from __future__ import annotations

import dataclasses

from rest_framework import serializers

from training_jobs.models import TrainingRun
from training_jobs.pipeline.config import TrainConfig


def _field_for(f: dataclasses.Field) -> serializers.Field:
    meta, kind = f.metadata, f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    common = {"required": False, "help_text": meta.get("help", "")}
    if "choices" in meta:
        return serializers.ChoiceField(choices=meta["choices"], **common)
    bounds = {k: meta[k] for k in ("min", "max") if k in meta}
    bounds = {("min_value" if k == "min" else "max_value"): v for k, v in bounds.items()}
    if kind == "bool":
        return serializers.BooleanField(**common)
    if kind == "int":
        return serializers.IntegerField(**common, **bounds)
    if kind == "float":
        return serializers.FloatField(**common, **bounds)
    return serializers.CharField(allow_blank=True, max_length=500, trim_whitespace=True, **common)


class _StrictSerializer(serializers.Serializer):
    def validate(self, attrs):
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: "unknown training option" for name in unknown})
        return attrs


TrainConfigSerializer = type(
    "TrainConfigSerializer",
    (_StrictSerializer,),
    {f.name: _field_for(f) for f in dataclasses.fields(TrainConfig)},
)
TrainConfigSerializer.__doc__ = "Training options (all optional; an empty body uses every default)."


class RunSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)
    clip_count = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = ["id", "status", "is_active", "config", "created_at", "started_at", "finished_at", "created_by",
                  "progress", "metrics", "artifacts", "snapshot", "clip_count", "error"]
        read_only_fields = fields

    def get_created_by(self, run) -> str | None:
        return run.created_by.get_username() if run.created_by_id else None

    def get_clip_count(self, run) -> int:
        return len(run.clip_ids or [])


class RunDetailSerializer(RunSerializer):
    """A run with its whole metric history (for charts) and the clip ids it used."""

    history = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["history", "clip_ids", "snapshot_path", "task_id"]
        read_only_fields = fields

    def get_history(self, run) -> list[dict]:
        from training_jobs.selectors import run_metrics

        return run_metrics(run.pk)


class LogLineSerializer(serializers.Serializer):
    offset = serializers.IntegerField()
    level = serializers.CharField()
    message = serializers.CharField()
    time = serializers.DateTimeField(allow_null=True)


class LogPageSerializer(serializers.Serializer):
    """GET /api/train/logs: lines after `offset`; ask with `next_offset` next time."""

    run = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(required=False)
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField()
    lines = LogLineSerializer(many=True)


class ModelVersionSerializer(serializers.Serializer):
    """A registry entry without its per-clip results (those are in the detail)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    run = serializers.IntegerField(source="run_id", allow_null=True)
    base_model = serializers.CharField()
    status = serializers.CharField()
    snapshot_hash = serializers.CharField()
    metrics = serializers.JSONField()
    size_bytes = serializers.IntegerField(allow_null=True)
    export = serializers.SerializerMethodField()
    guard = serializers.JSONField()
    note = serializers.CharField()
    deploy_name = serializers.CharField()
    created_at = serializers.DateTimeField()
    promoted_at = serializers.DateTimeField(allow_null=True)
    retired_at = serializers.DateTimeField(allow_null=True)

    def get_export(self, version) -> dict:
        return {k: v for k, v in version.export.items() if k != "clips"}


class ModelVersionDetailSerializer(ModelVersionSerializer):
    model_dir = serializers.CharField()
    snapshot_path = serializers.CharField()
    clip_results = serializers.JSONField()
    export_clips = serializers.SerializerMethodField()

    def get_export_clips(self, version) -> list:
        return version.export.get("clips", [])
