"""The live app's clip table (unmanaged, mapped exactly) and our side tables beside it.

All of these live in the `s2s` SQLite file (see `s2s_trainer.routers`). None is migrated by
Django: `review.schema` owns their DDL.
"""
from django.db import models


class ClipQuerySet(models.QuerySet):
    def without_audio(self):
        """Never read blobs for lists: they dominate the row and the I/O."""
        return self.defer("audio_blob")


class Clip(models.Model):
    """One utterance the live app captured: `s2s_training_data`, exactly as the spec's DDL."""

    id = models.AutoField(primary_key=True)
    transcript = models.TextField(null=True)
    audio_blob = models.BinaryField(null=True)
    is_reviewed = models.IntegerField(default=0, null=True)
    is_trained = models.IntegerField(default=0, null=True)
    # Kept as text: the live app writes CURRENT_TIMESTAMP strings, and a bad row must not crash
    # a read. Parsed by `review.timestamps.parse_timestamp`.
    timestamp = models.TextField(null=True)

    objects = ClipQuerySet.as_manager()

    class Meta:
        managed = False
        db_table = "s2s_training_data"
        ordering = ["id"]

    def __str__(self):
        return f"Clip {self.id}"


class ClipMeta(models.Model):
    """Per-clip review state we add: original transcript, version (ETag), cached audio metrics."""

    clip_id = models.IntegerField(primary_key=True)
    original_transcript = models.TextField(null=True)
    version = models.IntegerField(default=1)
    duration_s = models.FloatField(null=True)
    blob_length = models.IntegerField(null=True)
    rms_dbfs = models.FloatField(null=True)
    peak_dbfs = models.FloatField(null=True)
    clipping_ratio = models.FloatField(null=True)
    silence_ratio = models.FloatField(null=True)
    snr_db = models.FloatField(null=True)
    problem = models.TextField(default="", blank=True)
    review_seconds = models.FloatField(default=0)
    reviewed_at = models.DateTimeField(null=True)
    reviewed_by = models.TextField(default="", blank=True)
    updated_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "s2s_review_clipmeta"


class ClipEdit(models.Model):
    """Edit history: who changed what, when, from what to what."""

    clip_id = models.IntegerField()
    username = models.TextField(default="", blank=True)
    field = models.TextField(default="transcript")
    old_value = models.TextField(null=True)
    new_value = models.TextField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "s2s_review_edit"
        ordering = ["-id"]


class ReviewSession(models.Model):
    """Seconds a reviewer spent on a clip, one row per save; feeds the review statistics."""

    clip_id = models.IntegerField()
    username = models.TextField(default="", blank=True)
    seconds = models.FloatField()
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "s2s_review_session"


class TrashedClip(models.Model):
    """A deleted clip, whole (blob, transcript, flags), restorable until purged."""

    clip_id = models.IntegerField()
    transcript = models.TextField(null=True)
    audio_blob = models.BinaryField(null=True)
    is_reviewed = models.IntegerField(null=True)
    is_trained = models.IntegerField(null=True)
    timestamp = models.TextField(null=True)
    deleted_at = models.DateTimeField()
    deleted_by = models.TextField(default="", blank=True)

    class Meta:
        managed = False
        db_table = "s2s_review_trash"
        ordering = ["-id"]


class ClipIndicators(ClipMeta):
    """ClipMeta seen as quality indicators in admin (audio metrics, cached checks, priority)."""

    class Meta:
        proxy = True
        verbose_name = "clip quality indicators"
        verbose_name_plural = "clip quality indicators"
