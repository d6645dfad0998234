"""Confirmation pages for Django admin actions, reusable by any action on any model admin.

An action runs in up to three steps, all POSTs to the changelist URL (so its filters and a
"select all N" choice still hold):

1. the changelist's action button: the action answers `confirmation(...)`, a page that says
   what will change (and may hold a form, e.g. find-and-replace's pattern);
2. optionally "Preview" (`step(request) == "preview"`): the same page, with the form bound and a
   preview table of every change;
3. "Apply" (`step(request) == "apply"`): the action does the work and returns None, so Django
   redirects back to the changelist with the messages.

The page repeats the selection in hidden fields exactly as Django's own changelist posts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

STEP_FIELD = "confirm_step"
TEMPLATE = "admin/review/confirm_action.html"
SAMPLE_ROWS = 20


def step(request) -> str:
    """"" on the first click, then "preview" or "apply" from the confirmation page's buttons."""
    value = request.POST.get(STEP_FIELD, "")
    return value if value in ("preview", "apply") else ""


def selected_ids(queryset) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


@dataclass
class PreviewRow:
    """One line of a preview table: which object, its text before and after, or why it is skipped."""

    pk: int
    before: str
    after: str = ""
    error: str = ""


@dataclass
class Confirmation:
    title: str
    summary: list[str]
    apply_label: str
    form: object | None = None
    preview: list[PreviewRow] | None = None
    preview_label: str = ""  # set: the page offers a Preview button (the form must be previewed first)
    can_apply: bool = True
    hidden: dict[str, str] = field(default_factory=dict)  # extra values the apply step needs (a plan token)
    sample: list[str] = field(default_factory=list)  # a few of the selected objects, named


def _selection(request) -> list[tuple[str, str]]:
    """Hidden fields that make the next POST select the same objects as this one."""
    fields = [("action", request.POST.get("action", "")), ("index", "0")]
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    if request.POST.get("select_across") == "1":
        fields.append(("select_across", "1"))
        selected = selected[:1]  # Django only needs one to act on "all N" with the URL's filters
    fields += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in selected]
    return fields


def render_confirmation(modeladmin, request, queryset, confirmation: Confirmation) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": opts,
        "app_label": opts.app_label,
        "title": confirmation.title,
        "confirmation": confirmation,
        "selection": _selection(request),
        "step_field": STEP_FIELD,
        "hidden": sorted(confirmation.hidden.items()),
        "media": modeladmin.media + (confirmation.form.media if confirmation.form is not None else forms.Media()),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, TEMPLATE, context)
