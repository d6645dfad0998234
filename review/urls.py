from django.urls import include, path

from review import api, quality_api, views

# REST API (H1): /api/...; the contract is docs/api.md.
api_urlpatterns = [
    path("entries", api.EntryListApi.as_view(), name="entry-list"),
    path("entries/<int:clip_id>", api.EntryDetailApi.as_view(), name="entry-detail"),
    path("entries/<int:clip_id>/review", api.EntryReviewApi.as_view(), name="entry-review"),
    path("entries/<int:clip_id>/audio", api.EntryAudioApi.as_view(), name="entry-audio"),
    path("entries/<int:clip_id>/peaks", api.EntryPeaksApi.as_view(), name="entry-peaks"),
    path("stats", api.StatsApi.as_view(), name="stats"),
    path("export", api.ExportApi.as_view(), name="export"),
    path("trash", api.TrashListApi.as_view(), name="trash-list"),
    path("trash/purge", api.TrashPurgeApi.as_view(), name="trash-purge"),
    path("trash/<int:trash_id>", api.TrashItemApi.as_view(), name="trash-item"),
    path("trash/<int:trash_id>/restore", api.TrashRestoreApi.as_view(), name="trash-restore"),
    path("quality/checks", quality_api.QualityChecksApi.as_view(), name="quality-checks"),
    path("quality/transcribe", quality_api.TranscribeApi.as_view(), name="quality-transcribe"),
    path("quality/transcribe/<str:task_id>", quality_api.TranscribeStatusApi.as_view(), name="quality-transcribe-status"),
]

urlpatterns: list = [path("api/", include((api_urlpatterns, "review-api")))]

# Review page (H6).
urlpatterns += [path("", views.review_page, name="review-page")]
