"""Runs in the admin: read-mostly (status changes go through the dashboard's services)."""
from django.contrib import admin

from training_jobs.models import RunLogLine, TrainingRun


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
