"""Django admin for the capture database: work through thousands of clips in bulk.

Every change goes through `review.services`, like the API: an admin edit keeps the original
transcript and the edit history, honours the clip's version (a stale edit is refused), "delete"
means the restorable trash, and a locked capture file answers with a message instead of an
error page. Each bulk action first shows a confirmation page (`review.admin_actions`).

The clip changelist never loads blobs, and never reads a column stored after the blob either
(see review.filters): filters, search and ordering become a `ClipFilters`, the count and the
page of ids come from `review.filters.ClipQuery` on covering indexes, and the rows from
`selectors.clip_rows`. The ORM queryset only carries the same conditions as an `id IN (...)`
sub-query, for actions on "all N selected". A new list filter should subclass `ClipListFilter`
(fast path); an ordinary SimpleListFilter also works, through Django's slower ORM paging.
"""
from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import InvalidPage, Paginator
from django.db import OperationalError
from django.db.models.expressions import RawSQL
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from . import admin_actions, selectors, services
from .admin_actions import Confirmation, PreviewRow, render_confirmation, selected_ids, step
from .admin_quality import QualityCheckFilter, accept_suggestions
from .admin_readonly import ReadOnlyClipAdmin
from .api import export_response
from .filters import PROBLEM_KINDS, ClipFilters, ClipQuery
from .models import Clip, ClipEdit, TrashedClip
from .quality import CHECKS
from .transcript_rules import CASINGS, FindReplace, Normalize, RuleError

# As stored: Django's SQLite backend would otherwise parse the DATETIME column (see selectors).
STORED_TIMESTAMP = RawSQL('+"s2s_training_data"."timestamp"', [])
ORDERINGS = {"id": "id", "pk": "id", "stored_timestamp": "timestamp"}
PROBLEM_LABELS = {  # short, for the filter sidebar; the row's tooltip has the full sentence
    "null_blob": "no audio (NULL)", "empty_blob": "empty audio", "not_zlib": "audio not zlib",
    "truncated": "audio truncated", "too_long": "audio too long", "no_samples": "audio without samples",
    "odd_length": "audio odd byte count", "null_transcript": "no transcript (NULL)",
    "empty_transcript": "empty transcript", "null_timestamp": "no timestamp", "bad_timestamp": "unreadable timestamp",
}


# ---------------------------------------------------------------- list filters

class ClipListFilter(admin.SimpleListFilter):
    """A filter that only contributes to `ClipFilters`; ClipChangeList applies them all at once."""

    def queryset(self, request, queryset):
        return queryset

    def clip_filter(self) -> dict:
        raise NotImplementedError


class FlagFilter(ClipListFilter):
    field = ""

    def lookups(self, request, model_admin):
        return [("1", "Yes"), ("0", "No")]

    def clip_filter(self) -> dict:
        return {self.field: self.value() == "1"} if self.value() in ("0", "1") else {}


class ReviewedFilter(FlagFilter):
    title, parameter_name, field = "reviewed", "reviewed", "reviewed"


class TrainedFilter(FlagFilter):
    title, parameter_name, field = "used in training", "trained", "trained"


class DateFilter(ClipListFilter):
    """Capture day (UTC, as the live app writes timestamps)."""

    title, parameter_name = "captured", "captured"
    DAYS = {"today": 0, "7d": 6, "30d": 29, "365d": 364}

    def lookups(self, request, model_admin):
        return [("today", "Today"), ("7d", "Past 7 days"), ("30d", "Past 30 days"), ("365d", "Past year")]

    def clip_filter(self) -> dict:
        if self.value() not in self.DAYS:
            return {}
        today = timezone.now().date()
        return {"date_from": today - timedelta(days=self.DAYS[self.value()]), "date_to": today}


class ProblemFilter(ClipListFilter):
    """The problem codes a row can carry; audio decode failures are known once scanned (scanclips)."""

    title, parameter_name = "problem", "problem"

    def lookups(self, request, model_admin):
        return [("any", "Any problem"), ("none", "No problem"),
                *[(code, PROBLEM_LABELS.get(code, code.replace("_", " "))) for code in PROBLEM_KINDS]]

    def clip_filter(self) -> dict:
        value = self.value()
        if value == "any":
            return {"has_problem": True}
        if value == "none":
            return {"has_problem": False}
        return {"problem": value} if value in PROBLEM_KINDS else {}


class CheckFilter(ClipListFilter, QualityCheckFilter):
    """The quality-check filter on the index-only changelist (`check=` in ClipFilters)."""

    def clip_filter(self) -> dict:
        return {"check": self.value()} if self.value() in CHECKS else {}


# ---------------------------------------------------------------- changelist

class ClipPage(list):
    """One page of clips for the changelist and its inline-edit formset (which wants `.ordered`)."""

    ordered = True


def clip_instances(rows: list[selectors.ClipRow]) -> ClipPage:
    """Clip objects built from index-only rows: enough to display and edit the transcript, no blob."""
    page = ClipPage()
    for row in rows:
        clip = Clip(id=row.id, transcript=row.transcript, is_reviewed=int(row.is_reviewed), is_trained=int(row.is_trained))
        clip._state.adding, clip._state.db = False, "s2s"
        clip.row = row
        page.append(clip)
    return page


class ClipChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        self.clip_filters = self.build_clip_filters(request, queryset)
        if self.clip_filters.but(ordering="id") != ClipFilters():
            sql, params = ClipQuery(self.clip_filters).ids_subquery_sql()
            queryset = queryset.filter(id__in=RawSQL(sql, params))
        return queryset

    def build_clip_filters(self, request, queryset) -> ClipFilters:
        values = {}
        for spec in self.filter_specs:
            if isinstance(spec, ClipListFilter):
                values.update(spec.clip_filter())
        first = (self.get_ordering(request, queryset) or ["-id"])[0]
        name = first.lstrip("-")
        ordering = ("-" if first.startswith("-") else "") + ORDERINGS.get(name, "id")
        return ClipFilters(q=self.query.strip()[:200], ordering=ordering, **values)

    def get_results(self, request):
        """Count and page from the index-only SQL; rows from `clip_rows` (no blob, no table scan).

        A plain SimpleListFilter (one that narrows the ORM queryset instead of contributing to
        ClipFilters) is honoured too: the page then comes from Django's own ORM paging, slower
        but correct, and its rows are still drawn from `clip_rows`.
        """
        if any(not isinstance(spec, ClipListFilter) and getattr(spec, "used_parameters", None)
               for spec in self.filter_specs):
            super().get_results(request)
            self.result_list = clip_instances(selectors.clip_rows(list(self.result_list.values_list("pk", flat=True))))
            return
        listing = selectors.clip_list(self.clip_filters)
        paginator = Paginator(listing, self.list_per_page)
        result_count = paginator.count
        self.can_show_all = result_count <= self.list_max_show_all
        self.multi_page = result_count > self.list_per_page
        if (self.show_all and self.can_show_all) or not self.multi_page:
            rows = listing[0:result_count]
        else:
            try:
                rows = paginator.page(self.page_num).object_list
            except InvalidPage:
                raise IncorrectLookupParameters from None
        self.result_count = result_count
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.full_result_count = None
        self.result_list = clip_instances(rows)
        self.paginator = paginator


# ---------------------------------------------------------------- forms

class ClipAdminForm(forms.ModelForm):
    """Only the transcript is editable here, with the API's rules: `validate_transcript`, and the
    version the page was drawn at (hidden `version-<id>`) must still be the clip's version."""

    class Meta:
        model = Clip
        fields = ["transcript"]
        widgets = {"transcript": forms.Textarea(attrs={"rows": 2, "cols": 40})}

    def clean_transcript(self):
        try:
            return services.validate_transcript(self.cleaned_data.get("transcript") or "")
        except services.ReviewInputError as e:
            raise forms.ValidationError(e.message) from None

    def clean(self):
        cleaned = super().clean()
        self.sent_version = None
        if self.instance.pk is None or not self.has_changed():
            return cleaned
        try:
            self.sent_version = services.parse_version(self.data.get(f"version-{self.instance.pk}"))
        except services.ReviewInputError as e:
            raise forms.ValidationError(e.message) from None
        current = selectors.clip_version(self.instance.pk)
        if self.sent_version is not None and self.sent_version != current:
            self.add_error("transcript", forms.ValidationError(
                f"Someone saved this clip after you loaded the page (you had version {self.sent_version}, it is now "
                f"{current}). Nothing was saved: reload and apply your edit again."))
        return cleaned


class FindReplaceForm(forms.Form):
    find = forms.CharField(max_length=200, strip=False, help_text="Text to find (a regular expression if ticked below).")
    replace = forms.CharField(max_length=500, required=False, strip=False,
                              help_text=r"Replacement; with a regular expression \1 or \g<name> insert groups.")
    use_regex = forms.BooleanField(required=False, label="Regular expression")
    ignore_case = forms.BooleanField(required=False, label="Ignore case")

    def rule(self):
        return FindReplace(**self.cleaned_data)


class NormalizeForm(forms.Form):
    collapse_whitespace = forms.BooleanField(required=False, initial=True, label="Collapse whitespace",
                                             help_text="Trim, and turn runs of spaces, tabs and line breaks into one space.")
    punctuation_spacing = forms.BooleanField(required=False, label="No space before punctuation",
                                             help_text='"hello , world ?" becomes "hello, world?"')
    casing = forms.ChoiceField(choices=[(c, c) for c in CASINGS], initial="keep",
                               help_text="sentence: capitalize the first letter.")

    def rule(self):
        return Normalize(**self.cleaned_data)


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[("jsonl", "JSONL manifest + WAV (NeMo)"), ("csv", "CSV + WAV"),
                                        ("hf", "Hugging Face datasets folder")], initial="jsonl")


def _run(modeladmin, request, work, done: str):
    try:
        count = work()
    except OperationalError as e:
        modeladmin.message_user(request, f"Nothing changed: {e}", messages.ERROR)
        return
    modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)


def _sample(ids: list[int]) -> list[str]:
    rows = selectors.clip_rows(ids[:admin_actions.SAMPLE_ROWS])
    items = [f"#{r.id}: {Truncator(r.transcript or '').chars(80)}" for r in rows]
    if len(ids) > len(rows):
        items.append(f"… and {len(ids) - len(rows)} more")
    return items


# ---------------------------------------------------------------- clips

@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    form = ClipAdminForm
    list_display = ["id", "audio", "transcript", "duration", "reviewed", "trained", "problem", "stored_timestamp"]
    list_display_links = ["id"]
    list_editable = ["transcript"]
    list_filter = [ReviewedFilter, TrainedFilter, DateFilter, ProblemFilter, CheckFilter]
    search_fields = ["transcript"]
    search_help_text = "Text contained in the transcript (case-insensitive for ASCII)."
    ordering = ["-id"]  # newest captures first
    sortable_by = ["id", "stored_timestamp"]
    list_per_page = 50
    list_max_show_all = 200
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = ["transcript", "audio", "reviewed", "trained", "stored_timestamp", "duration", "problem"]
    readonly_fields = ["audio", "reviewed", "trained", "stored_timestamp", "duration", "problem"]
    actions = ["mark_reviewed", "mark_unreviewed", "mark_untrained", "move_to_trash", "export_selected",
               "find_replace", "normalize_transcripts", accept_suggestions]

    class Media:
        css = {"all": ["css/admin_review.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).defer("audio_blob", "timestamp").annotate(stored_timestamp=STORED_TIMESTAMP)

    def get_changelist(self, request, **kwargs):
        return ClipChangeList

    def get_search_results(self, request, queryset, search_term):
        return queryset, False  # the search is part of ClipFilters (ClipChangeList)

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=ClipAdminForm, **kwargs)

    def has_add_permission(self, request):
        return False  # clips come from the live app

    def has_delete_permission(self, request, obj=None):
        return False  # "Move to trash" instead: restorable, through the service

    # -------------------------------------------------- columns

    @staticmethod
    def _row(obj) -> selectors.ClipRow | None:
        if not hasattr(obj, "row"):
            rows = selectors.clip_rows([obj.pk]) if obj.pk else []
            obj.row = rows[0] if rows else None
        return obj.row

    @admin.display(boolean=True, description="reviewed")
    def reviewed(self, obj):
        row = self._row(obj)
        return row.is_reviewed if row else bool(obj.is_reviewed)

    @admin.display(boolean=True, description="trained")
    def trained(self, obj):
        row = self._row(obj)
        return row.is_trained if row else bool(obj.is_trained)

    @admin.display(description="timestamp (as stored)", ordering="stored_timestamp")
    def stored_timestamp(self, obj):
        row = self._row(obj)
        return row.timestamp_raw if row else getattr(obj, "stored_timestamp", None)

    @admin.display(description="duration")
    def duration(self, obj):
        row = self._row(obj)
        return f"{row.duration_s:.1f} s" if row and row.duration_s is not None else "–"

    @admin.display(description="problem")
    def problem(self, obj):
        row = self._row(obj)
        if not row or not row.problem:
            return ""
        return format_html('<span title="{}">{}</span>', row.problem_detail, row.problem.replace("_", " "))

    @admin.display(description="audio")
    def audio(self, obj):
        # The version the page was drawn at travels with the row: an inline edit sends it back.
        row = self._row(obj)
        return format_html(
            '<audio controls preload="none" src="/api/entries/{}/audio"></audio>'
            '<input type="hidden" name="version-{}" value="{}">',
            obj.pk, obj.pk, row.version if row else 1,
        )

    # -------------------------------------------------- edits

    def save_model(self, request, obj, form, change):
        """Edits (change form and the list's inline field) go through the service: history kept."""
        try:
            services.clip_update(obj.pk, request.user, getattr(form, "sent_version", None),
                                 transcript=form.cleaned_data["transcript"])
        except services.ClipConflict as e:
            self.message_user(request, str(e), messages.ERROR)

    def changeform_view(self, request, *args, **kwargs):
        # Django wraps this view in a transaction on the capture file; a locked file lands here.
        try:
            return super().changeform_view(request, *args, **kwargs)
        except OperationalError as e:
            self.message_user(request, f"Not saved, the clip database is busy: {e}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:review_clip_changelist"))

    # -------------------------------------------------- bulk actions

    def _flag_action(self, request, queryset, *, flag: str, value: bool, words: str):
        ids = selected_ids(queryset)
        counts = selectors.clip_flag_counts(ids)
        already = counts[flag] if value else counts["clips"] - counts[flag]
        if step(request) != "apply":
            return render_confirmation(self, request, queryset, Confirmation(
                title=f"Mark clips {words}",
                summary=[f"{counts['clips'] - already} of the {counts['clips']} selected clips will be marked {words}; "
                         f"{already} already are and stay as they are.",
                         "Each change is recorded in the edit history."],
                apply_label=f"Mark {words}", sample=_sample(ids)))
        column = {"reviewed": "is_reviewed", "trained": "is_trained"}[flag]
        _run(self, request, lambda: services.clips_set_flags(ids, request.user, **{column: value}),
             f"{{count}} clips marked {words}.")

    @admin.action(description="Mark selected clips reviewed")
    def mark_reviewed(self, request, queryset):
        return self._flag_action(request, queryset, flag="reviewed", value=True, words="reviewed")

    @admin.action(description="Mark selected clips unreviewed")
    def mark_unreviewed(self, request, queryset):
        return self._flag_action(request, queryset, flag="reviewed", value=False, words="unreviewed")

    @admin.action(description="Reset trained (use the selected clips in the next training again)")
    def mark_untrained(self, request, queryset):
        return self._flag_action(request, queryset, flag="trained", value=False, words="not used in training")

    @admin.action(description="Move selected clips to the trash")
    def move_to_trash(self, request, queryset):
        ids = selected_ids(queryset)
        if step(request) != "apply":
            return render_confirmation(self, request, queryset, Confirmation(
                title="Move clips to the trash",
                summary=[f"{len(ids)} clips will leave the list and go to the trash, whole (audio, transcript, flags).",
                         "They can be restored under the same id from Trashed clips until purged. "
                         "Each move is recorded in the edit history."],
                apply_label="Move to the trash", sample=_sample(ids)))
        _run(self, request, lambda: len(services.clips_trash(ids, request.user)), "{count} clips moved to the trash.")

    @admin.action(description="Export selected clips (JSONL, CSV or datasets)")
    def export_selected(self, request, queryset):
        ids = sorted(selected_ids(queryset))  # a data set in capture order, whatever the list's order
        form = ExportForm(request.POST if step(request) == "apply" else None)
        if step(request) != "apply" or not form.is_valid():
            return render_confirmation(self, request, queryset, Confirmation(
                title="Export clips",
                summary=[f"{len(ids)} clips will be written to a zip (audio as 16 kHz WAV, transcripts, flags), "
                         "streamed as it is made; `manage.py importclips` reads it back.",
                         "Nothing changes in the clips; the export is recorded in their edit history."],
                apply_label=f"Export {len(ids)} clips", form=form, sample=_sample(ids)))
        fmt = form.cleaned_data["format"]
        try:
            services.clips_record_export(ids, request.user, fmt)
        except OperationalError as e:
            self.message_user(request, f"Not exported: {e}", messages.ERROR)
            return None
        return export_response(request, ids, fmt)

    @admin.action(description="Find and replace in the selected transcripts")
    def find_replace(self, request, queryset):
        return self._rewrite(request, queryset, FindReplaceForm, "Find and replace in transcripts")

    @admin.action(description="Normalize whitespace / casing of the selected transcripts")
    def normalize_transcripts(self, request, queryset):
        return self._rewrite(request, queryset, NormalizeForm, "Normalize transcripts")

    def _rewrite(self, request, queryset, form_class, title: str):
        """Form -> preview of every change -> apply exactly the previewed plan (at the previewed versions)."""
        ids = selected_ids(queryset)
        current = step(request)
        form = form_class(request.POST if current else None)
        confirmation = Confirmation(
            title=title, form=form, preview_label="Preview changes", apply_label="Apply these changes",
            can_apply=False, summary=[f"{len(ids)} clips selected. Nothing is saved until you apply the preview; "
                                      "each change is recorded in the edit history."])
        plan = None
        if current and form.is_valid():
            try:
                plan = services.transcripts_rewrite_plan(ids, form.rule())
            except RuleError as e:
                form.add_error(e.field if e.field in form.fields else None, e.message)
        if plan is not None and current == "apply":
            if request.POST.get("plan") == plan.token:
                result = services.clips_rewrite_transcripts(plan, request.user)
                self.message_user(request, f"{result.changed} transcripts changed ({plan.description}).", messages.SUCCESS)
                for failure in result.failed:
                    self.message_user(request, failure, messages.WARNING)
                return None
            self.message_user(request, "The transcripts or the rule changed since the preview: check this preview "
                                       "and apply again.", messages.WARNING)
        if plan is not None:
            skipped = sum(1 for c in plan.changes if c.error)
            confirmation.summary = [
                f"{len(plan.valid)} of the {len(ids)} selected transcripts will change ({plan.description}); "
                f"{plan.unchanged} stay as they are" + (f"; {skipped} cannot be changed and are skipped." if skipped else "."),
                "Each change is recorded in the edit history; a clip edited after this preview is left alone.",
            ]
            confirmation.preview = [PreviewRow(c.clip_id, c.old or "", c.new, c.error) for c in plan.changes]
            confirmation.can_apply = bool(plan.valid)
            confirmation.hidden = {"plan": plan.token}
        return render_confirmation(self, request, queryset, confirmation)


# ---------------------------------------------------------------- trash and history

@admin.register(TrashedClip)
class TrashedClipAdmin(ReadOnlyClipAdmin):
    list_display = ["id", "clip_id", "transcript", "deleted_at", "deleted_by"]
    search_fields = ["transcript", "=clip_id"]
    actions = ["restore", "purge"]
    fields = ["clip_id", "transcript", "deleted_at", "deleted_by"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("audio_blob", "timestamp")

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
        ids = selected_ids(queryset)
        if step(request) != "apply":
            clip_ids = list(queryset.values_list("clip_id", flat=True)[:admin_actions.SAMPLE_ROWS])
            return render_confirmation(self, request, queryset, Confirmation(
                title="Purge trashed clips",
                summary=[f"{len(ids)} trashed clips will be deleted for good, audio included: this cannot be undone.",
                         "Their edit history stays."],
                apply_label="Purge for good", sample=[f"clip #{i}" for i in clip_ids]))
        _run(self, request, lambda: services.trash_purge(ids), "{count} clips purged.")


@admin.register(ClipEdit)
class ClipEditAdmin(ReadOnlyClipAdmin):
    """Who changed what and when: every service write and bulk action adds rows; nobody edits them."""

    list_display = ["created_at", "clip", "username", "field", "old_value", "new_value"]
    list_filter = ["field", "username"]
    search_fields = ["=clip_id", "username"]
