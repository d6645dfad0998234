"""Runs in the admin: read-mostly (status changes go through the dashboard's services)."""
from django.contrib import admin

from training_jobs.models import ModelEvent, ModelVersion, RunLogLine, TrainingRun


class RunLogLineInline(admin.TabularInline):
    model = RunLogLine
    fields = ("offset", "level", "message", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "created_by", "created_at", "started_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("status", "config", "progress", "metrics", "artifacts", "snapshot_path", "snapshot",
                       "clip_ids", "marked_trained_at", "error", "task_id", "created_at", "started_at",
                       "finished_at", "created_by")
    inlines = [RunLogLineInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: promotion, rollback and deletion go through the models page (guard, files, events)."""

    list_display = ("name", "status", "run", "created_at", "promoted_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelEvent)
class ModelEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "version_name", "user")
    list_filter = ("action",)
    readonly_fields = ("version", "version_name", "action", "detail", "user", "created_at")
