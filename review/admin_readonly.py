"""The base of the admin pages that only show what services wrote (edit history, quality
indicators, trash): nobody adds, edits or deletes rows there, and each row links to its clip."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html


class ReadOnlyClipAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # purge and trash go through their actions, i.e. through the services

    @admin.display(description="clip", ordering="clip_id")
    def clip(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:review_clip_change", args=[obj.clip_id]), obj.clip_id)
