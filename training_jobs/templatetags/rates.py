"""`{{ wer|pct }}`: an error rate (0.123) as a percentage ("12.3%"), "—" when unknown."""
from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{100 * float(value):.1f}%"
    except (TypeError, ValueError):
        return "—"
