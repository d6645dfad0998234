"""Training routes: the dashboard page and the REST API (mounted at the site root)."""
from django.urls import path

from training_jobs import api, views

urlpatterns = [
    path("training/", views.dashboard, name="training-dashboard"),
    path("api/train", api.TrainStartApi.as_view(), name="train-start"),
    path("api/train/status", api.TrainStatusApi.as_view(), name="train-status"),
    path("api/train/logs", api.TrainLogsApi.as_view(), name="train-logs"),
    path("api/runs", api.RunListApi.as_view(), name="run-list"),
    path("api/runs/<int:run_id>", api.RunDetailApi.as_view(), name="run-detail"),
    path("api/runs/<int:run_id>/pause", api.RunActionApi.as_view(action="pause"), name="run-pause"),
    path("api/runs/<int:run_id>/resume", api.RunActionApi.as_view(action="resume"), name="run-resume"),
    path("api/runs/<int:run_id>/stop", api.RunActionApi.as_view(action="stop"), name="run-stop"),
    path("models/", views.model_list, name="model-list"),
    path("models/compare", views.model_compare, name="model-compare"),
    path("models/rollback", views.model_rollback, name="model-rollback"),
    path("models/<int:version_id>/", views.model_detail, name="model-detail"),
    path("models/<int:version_id>/promote", views.model_promote, name="model-promote"),
    path("models/<int:version_id>/export", views.model_export, name="model-export"),
    path("models/<int:version_id>/delete", views.model_delete, name="model-delete"),
    path("api/models", api.ModelListApi.as_view(), name="api-model-list"),
    path("api/models/compare", api.ModelCompareApi.as_view(), name="api-model-compare"),
    path("api/models/rollback", api.ModelRollbackApi.as_view(), name="api-model-rollback"),
    path("api/models/live", api.LiveStatusApi.as_view(), name="api-model-live"),
    path("api/models/tasks/<str:task_id>", api.ModelTaskStatusApi.as_view(), name="api-model-task"),
    path("api/models/<str:version>", api.ModelDetailApi.as_view(), name="api-model-detail"),
    path("api/models/<str:version>/export", api.ModelExportApi.as_view(), name="api-model-export"),
    path("api/models/<str:version>/promote", api.ModelPromoteApi.as_view(), name="api-model-promote"),
]
