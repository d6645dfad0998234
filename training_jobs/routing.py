"""Websocket routes (mounted by s2s_trainer.asgi behind session auth and the allowed-hosts check)."""
from django.urls import path

from training_jobs.consumers import RunConsumer

websocket_urlpatterns: list = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]
