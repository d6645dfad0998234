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
]
