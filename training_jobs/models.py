"""Training runs as Django rows (default database): what was asked, where it stands, what it made.

The Celery tasks and the relay write these; the dashboard, REST and the websocket read them, so a
reload (or a second browser) sees a run's whole history, not just the events it happened to catch.
"""
from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    PREPARING = "preparing"
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EVALUATING = "evaluating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# A run in one of these holds the (single) training slot; `stopped` does not (it is resumable).
ACTIVE_STATUSES = (
    RunStatus.QUEUED,
    RunStatus.PREPARING,
    RunStatus.TRAINING,
    RunStatus.PAUSED,
    RunStatus.STOPPING,
    RunStatus.EVALUATING,
)
FINAL_STATUSES = (RunStatus.STOPPED, RunStatus.SUCCEEDED, RunStatus.FAILED)


class TrainingRun(models.Model):
    """One fine-tuning run, from the Start button to a model (or an error)."""

    config = models.JSONField(help_text="TrainConfig.to_dict(), validated")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The latest Progress.as_dict() the relay published (what a late page load shows first).
    progress = models.JSONField(default=dict, blank=True)
    # Final metrics (TrainResult.metrics) and result files (model dir, reports).
    metrics = models.JSONField(default=dict, blank=True)
    artifacts = models.JSONField(default=dict, blank=True)
    snapshot_path = models.CharField(max_length=1000, blank=True, default="")
    snapshot = models.JSONField(default=dict, blank=True, help_text="counts, excluded, manifest hash")
    clip_ids = models.JSONField(default=list, blank=True, help_text="clips this run trained on")
    marked_trained_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"Run {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class RunMetric(models.Model):
    """One point of a run's curves (train loss per step, validation loss/WER per evaluation)."""

    run = models.ForeignKey(TrainingRun, related_name="metric_points", on_delete=models.CASCADE)
    stage = models.CharField(max_length=16, default="training")
    step = models.IntegerField(default=0)
    total = models.IntegerField(default=0)
    epoch = models.FloatField(null=True)
    train_loss = models.FloatField(null=True)
    val_loss = models.FloatField(null=True)
    wer = models.FloatField(null=True)
    learning_rate = models.FloatField(null=True)
    samples_per_s = models.FloatField(null=True)
    gpu_memory_mb = models.FloatField(null=True)
    time = models.FloatField(help_text="unix seconds, from the event")

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "id"])]

    FIELDS = ("stage", "step", "total", "epoch", "train_loss", "val_loss", "wer", "learning_rate",
              "samples_per_s", "gpu_memory_mb", "time")

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


class RunLogLine(models.Model):
    """A run's log, one row per line; `offset` counts lines from 1 so readers can ask for "after N"."""

    run = models.ForeignKey(TrainingRun, related_name="log_lines", on_delete=models.CASCADE)
    offset = models.IntegerField()
    level = models.CharField(max_length=8, default="info")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "offset"]
        constraints = [models.UniqueConstraint(fields=["run", "offset"], name="runlogline_run_offset_unique")]

    def as_dict(self) -> dict:
        return {"offset": self.offset, "level": self.level, "message": self.message,
                "time": self.created_at.isoformat() if self.created_at else None}


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate"
    LIVE = "live"
    RETIRED = "retired"


class ModelVersion(models.Model):
    """A trained model in the registry: where it came from, how good it is, where it is deployed.

    `metrics` and `clip_results` are the transformers evaluation on the run's test split;
    `export` is the CTranslate2 conversion and its faster-whisper verification on the same clips;
    `guard` is the last promotion check against the live model (cached per live version).
    """

    name = models.CharField(max_length=100, unique=True)
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    base_model = models.CharField(max_length=1000, blank=True, default="")
    model_dir = models.CharField(max_length=1000, help_text="transformers directory")
    snapshot_path = models.CharField(max_length=1000, blank=True, default="")
    snapshot_hash = models.CharField(max_length=64, blank=True, default="")
    language = models.CharField(max_length=16, default="en")
    metrics = models.JSONField(default=dict, blank=True, help_text="test WER/CER, base WER/CER, clips")
    clip_results = models.JSONField(default=list, blank=True, help_text="per test clip: id, reference, text, wer")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE, db_index=True)
    export = models.JSONField(default=dict, blank=True, help_text="ct2 dir, quantization, size, verification")
    guard = models.JSONField(default=dict, blank=True, help_text="last comparison with the live model")
    note = models.TextField(blank=True, default="", help_text="why it is (still) a candidate, or was forced")
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @property
    def deploy_name(self) -> str:
        """Directory name under S2S_LIVE_MODEL_DIR/versions/: the version and its quantization."""
        return f"{self.name}-{self.export.get('quantization', 'none')}"

    @property
    def test_wer(self) -> float | None:
        return self.metrics.get("wer")


class ModelEvent(models.Model):
    """The deployment history: promotions, forced promotions, refusals, rollbacks, deletions."""

    class Action(models.TextChoices):
        EXPORTED = "exported"
        PROMOTED = "promoted"
        FORCED = "forced"
        REFUSED = "refused"
        ROLLED_BACK = "rolled_back"
        DELETED = "deleted"

    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    version_name = models.CharField(max_length=100)
    action = models.CharField(max_length=16, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.action} {self.version_name}"
