"""Django admin for the capture database: browse, fix and bulk-flag clips, empty the trash.

Every change goes through `review.services`, like the API: an admin edit keeps the original
transcript and the edit history, "delete" means the restorable trash, and a locked capture file
answers with a message instead of an error page. The changelist never loads blobs and reads the
timestamp as stored (a bad value must not break the page).
"""
from django import forms
from django.contrib import admin, messages
from django.db import OperationalError
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .admin_quality import QualityCheckFilter, accept_suggestions
from .models import Clip, ClipEdit, TrashedClip

# As stored: Django's SQLite backend would otherwise parse the DATETIME column (see selectors).
STORED_TIMESTAMP = RawSQL('+"s2s_training_data"."timestamp"', [])


class FlagFilter(admin.SimpleListFilter):
    column = ""

    def lookups(self, request, model_admin):
        return [("1", "Yes"), ("0", "No")]

    def queryset(self, request, queryset):
        unset = Q(**{self.column: 0}) | Q(**{f"{self.column}__isnull": True})
        if self.value() == "1":
            return queryset.exclude(unset)
        if self.value() == "0":
            return queryset.filter(unset)
        return queryset


class ReviewedFilter(FlagFilter):
    title, parameter_name, column = "reviewed", "reviewed", "is_reviewed"


class TrainedFilter(FlagFilter):
    title, parameter_name, column = "used in training", "trained", "is_trained"


class ClipAdminForm(forms.ModelForm):
    """Only the transcript is editable here; the rule is the API's (services.validate_transcript)."""

    class Meta:
        model = Clip
        fields = ["transcript"]
        widgets = {"transcript": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def clean_transcript(self):
        try:
            return services.validate_transcript(self.cleaned_data.get("transcript") or "")
        except services.ReviewInputError as e:
            raise forms.ValidationError(e.message) from None


def _run(modeladmin, request, work, done: str):
    try:
        count = work()
    except OperationalError as e:
        modeladmin.message_user(request, f"Nothing changed: {e}", messages.ERROR)
        return
    modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    form = ClipAdminForm
    list_display = ["id", "transcript", "reviewed", "trained", "stored_timestamp"]
    list_display_links = ["id"]
    list_editable = ["transcript"]
    list_filter = [ReviewedFilter, TrainedFilter, QualityCheckFilter]
    search_fields = ["transcript"]
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False
    fields = ["transcript", "audio", "reviewed", "trained", "stored_timestamp"]
    readonly_fields = ["audio", "reviewed", "trained", "stored_timestamp"]
    actions = ["mark_reviewed", "mark_unreviewed", "mark_untrained", "move_to_trash", accept_suggestions]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("audio_blob", "timestamp").annotate(stored_timestamp=STORED_TIMESTAMP)

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=ClipAdminForm, **kwargs)

    def has_add_permission(self, request):
        return False  # clips come from the live app

    def has_delete_permission(self, request, obj=None):
        return False  # "Move to trash" instead: restorable, through the service

    @admin.display(boolean=True, description="reviewed")
    def reviewed(self, obj):
        return bool(obj.is_reviewed)

    @admin.display(boolean=True, description="trained")
    def trained(self, obj):
        return bool(obj.is_trained)

    @admin.display(description="timestamp (as stored)")
    def stored_timestamp(self, obj):
        return getattr(obj, "stored_timestamp", None)

    @admin.display(description="audio")
    def audio(self, obj):
        return format_html('<audio controls preload="none" src="/api/entries/{}/audio"></audio>', obj.pk)

    def save_model(self, request, obj, form, change):
        """Edits (change form and the list's inline field) go through the service: history kept."""
        services.clip_update(obj.pk, request.user, None, transcript=form.cleaned_data["transcript"])

    def changeform_view(self, request, *args, **kwargs):
        # Django wraps this view in a transaction on the capture file; a locked file lands here.
        try:
            return super().changeform_view(request, *args, **kwargs)
        except OperationalError as e:
            self.message_user(request, f"Not saved, the clip database is busy: {e}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:review_clip_changelist"))

    @admin.action(description="Mark selected clips reviewed")
    def mark_reviewed(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        _run(self, request, lambda: services.clips_set_flags(ids, request.user, is_reviewed=True), "{count} clips marked reviewed.")

    @admin.action(description="Mark selected clips unreviewed")
    def mark_unreviewed(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        _run(self, request, lambda: services.clips_set_flags(ids, request.user, is_reviewed=False), "{count} clips marked unreviewed.")

    @admin.action(description="Mark selected clips not used in training")
    def mark_untrained(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        _run(self, request, lambda: services.clips_set_flags(ids, request.user, is_trained=False), "{count} clips marked untrained.")

    @admin.action(description="Move selected clips to the trash")
    def move_to_trash(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        _run(self, request, lambda: len(services.clips_trash(ids, request.user)), "{count} clips moved to the trash.")


@admin.register(TrashedClip)
class TrashedClipAdmin(admin.ModelAdmin):
    list_display = ["id", "clip_id", "transcript", "deleted_at", "deleted_by"]
    search_fields = ["transcript", "=clip_id"]
    actions = ["restore", "purge"]
    fields = ["clip_id", "transcript", "deleted_at", "deleted_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("audio_blob", "timestamp")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # "Purge" instead, through the service

    @admin.action(description="Restore selected clips (same id)")
    def restore(self, request, queryset):
        restored, refused = 0, []
        for trash_id in queryset.values_list("id", flat=True):
            try:
                services.clip_restore(trash_id, request.user)
                restored += 1
            except (services.ClipIdTaken, services.TrashNotFound, OperationalError) as e:
                refused.append(str(e))
        self.message_user(request, f"{restored} clips restored.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Purge selected clips for good")
    def purge(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        _run(self, request, lambda: services.trash_purge(ids), "{count} clips purged.")


@admin.register(ClipEdit)
class ClipEditAdmin(admin.ModelAdmin):
    list_display = ["created_at", "clip_id", "username", "field", "old_value", "new_value"]
    list_filter = ["field", "username"]
    search_fields = ["=clip_id", "username"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
