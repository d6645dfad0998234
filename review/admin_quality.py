"""Admin pieces for quality control, kept apart from review/admin.py: the "quality check" list
filter and the bulk "accept the model's suggestions" action with its confirmation page.

The action takes a suggestion only where `quality_services.AcceptRule` allows it (the model says
the same words as the stored transcript, confidently); it shows which selected clips qualify and
why the others do not, and changes nothing until confirmed. Each accepted clip goes through
`clip_update`, so the edit history records who accepted what.
"""
from django.contrib import admin, messages
from django.db import OperationalError
from django.db.models.expressions import RawSQL
from django.template.response import TemplateResponse

from . import quality_services
from .admin_readonly import ReadOnlyClipAdmin
from .models import ClipIndicators
from .quality import CHECKS
from .quality_selectors import CHECK_TABLE, QUALITY_TABLE, check_counts


class QualityCheckFilter(admin.SimpleListFilter):
    title, parameter_name = "quality check", "check"
    id_field = "id"

    def lookups(self, request, model_admin):
        try:
            counts = check_counts()
        except OperationalError:
            counts = {}
        return [(c.code, f"{c.title} ({counts.get(c.code, 0)})") for c in CHECKS.values()]

    def queryset(self, request, queryset):
        if self.value() in CHECKS:
            subquery = RawSQL(f"SELECT clip_id FROM {CHECK_TABLE} WHERE code = %s", [self.value()])
            return queryset.filter(**{f"{self.id_field}__in": subquery})
        return queryset


@admin.action(description="Accept the model's suggestions where it agrees with high confidence")
def accept_suggestions(modeladmin, request, queryset):
    ids = list(queryset.values_list("id", flat=True))
    rule = quality_services.AcceptRule()
    if request.POST.get("confirm") == "yes":
        try:
            out = quality_services.clips_accept_suggestions(ids, request.user, rule)
        except OperationalError as e:
            modeladmin.message_user(request, f"Nothing more changed: {e}", messages.ERROR)
            return None
        modeladmin.message_user(
            request, f"{len(out['accepted'])} suggestions accepted and marked reviewed; "
            f"{len(out['skipped'])} clips left as they were.", messages.SUCCESS)
        return None
    acceptable, skipped = quality_services.clips_accept_preview(ids, rule)
    return TemplateResponse(request, "admin/review/accept_suggestions.html", {
        **modeladmin.admin_site.each_context(request),
        "title": "Accept the model's suggestions?",
        "opts": modeladmin.model._meta,
        "acceptable": [{"id": i.clip_id, "stored": i.transcript, "suggested": i.asr.text} for i in acceptable],
        "skipped": sorted(skipped.items()),
        "selected": ids,
        "action": "accept_suggestions",
        "rule": rule,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    })


class IndicatorCheckFilter(QualityCheckFilter):
    id_field = "clip_id"


@admin.register(ClipIndicators)
class ClipIndicatorsAdmin(ReadOnlyClipAdmin):
    """Read-only: each measured clip's audio indicators, the checks that fired and its priority
    (most likely wrong first). Filled by `manage.py scanclips` and `transcribeclips`."""

    list_display = ["clip", "duration_s", "rms_dbfs", "peak_dbfs", "clipping", "silence", "snr_db", "checks", "priority"]
    list_filter = [IndicatorCheckFilter]
    list_per_page = 100
    show_full_result_count = False

    def get_queryset(self, request):
        meta = ClipIndicators._meta.db_table
        return super().get_queryset(request).annotate(
            checks=RawSQL(f"SELECT codes FROM {QUALITY_TABLE} WHERE clip_id = {meta}.clip_id", []),
            priority=RawSQL(f"SELECT COALESCE(priority, 0) FROM {QUALITY_TABLE} WHERE clip_id = {meta}.clip_id", []),
        ).order_by("-priority", "clip_id")

    @admin.display(description="clipping %")
    def clipping(self, obj):
        return None if obj.clipping_ratio is None else round(100 * obj.clipping_ratio, 2)

    @admin.display(description="silence %")
    def silence(self, obj):
        return None if obj.silence_ratio is None else round(100 * obj.silence_ratio, 1)

    @admin.display(description="checks")
    def checks(self, obj):
        return obj.checks or ""

    @admin.display(description="priority", ordering="priority")
    def priority(self, obj):
        return round(obj.priority or 0, 2)
