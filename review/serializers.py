"""JSON shapes of the review API (see docs/api.md); input serializers only parse and validate.

Output serializers read the plain dataclasses that `review.selectors` returns, so no model
instance (and no blob) is ever loaded to answer a list.
"""
from django.urls import reverse
from rest_framework import serializers

from .services import ReviewInputError, validate_transcript


class EntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    transcript = serializers.CharField(read_only=True, allow_null=True)
    original_transcript = serializers.CharField(read_only=True, allow_null=True)
    is_reviewed = serializers.BooleanField(read_only=True)
    is_trained = serializers.BooleanField(read_only=True)
    timestamp = serializers.CharField(read_only=True, allow_null=True, help_text="ISO 8601 UTC; null when unreadable")
    duration_s = serializers.FloatField(read_only=True, allow_null=True, help_text="null until the clip is decoded once")
    problem = serializers.CharField(read_only=True, help_text='"" or a code such as not_zlib, null_blob, null_transcript')
    version = serializers.IntegerField(read_only=True)

    def to_representation(self, row):
        # A page is up to 500 rows of plain values: skip DRF's per-field machinery (the fields
        # above still document the shape in the OpenAPI schema).
        if type(self) is EntrySerializer:
            return {name: getattr(row, name) for name in self.fields}
        return super().to_representation(row)


class MetricsSerializer(serializers.Serializer):
    rms_dbfs = serializers.FloatField()
    peak_dbfs = serializers.FloatField()
    clipping_ratio = serializers.FloatField()
    silence_ratio = serializers.FloatField()
    snr_db = serializers.FloatField()


class EditSerializer(serializers.Serializer):
    username = serializers.CharField()
    field = serializers.CharField()
    old_value = serializers.CharField(allow_null=True)
    new_value = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class CheckSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable code (review.quality.CHECKS), e.g. clipping, hallucination")
    message = serializers.CharField()


class SuggestionSerializer(serializers.Serializer):
    model_id = serializers.CharField()
    text = serializers.CharField(allow_blank=True)
    avg_logprob = serializers.FloatField(allow_null=True)
    no_speech_prob = serializers.FloatField(allow_null=True)
    min_word_prob = serializers.FloatField(allow_null=True)
    words = serializers.ListField(child=serializers.DictField(), help_text="[{word, start, end, probability}]")
    low_confidence_words = serializers.ListField(child=serializers.IntegerField(), help_text="indexes into words")


class EntryDetailSerializer(EntrySerializer):
    timestamp_raw = serializers.JSONField(read_only=True, help_text="the stored value, exactly")
    metrics = MetricsSerializer(read_only=True, allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)
    checks = CheckSerializer(many=True, read_only=True)
    suggestion = SuggestionSerializer(read_only=True, allow_null=True)
    problem_detail = serializers.CharField(read_only=True)
    audio_problem = serializers.CharField(read_only=True, help_text='"" when the audio plays; else why audio/peaks answer 422')
    prev_id = serializers.IntegerField(read_only=True, allow_null=True)
    next_id = serializers.IntegerField(read_only=True, allow_null=True)
    next_unreviewed_id = serializers.IntegerField(read_only=True, allow_null=True)
    audio_url = serializers.SerializerMethodField()
    peaks_url = serializers.SerializerMethodField()
    edits = EditSerializer(many=True, read_only=True)

    def get_audio_url(self, obj) -> str:
        return reverse("review-api:entry-audio", args=[obj.id])

    def get_peaks_url(self, obj) -> str:
        return reverse("review-api:entry-peaks", args=[obj.id])


class EntryUpdateSerializer(serializers.Serializer):
    """PUT/PATCH body. Every field optional; the transcript rule lives in services."""

    transcript = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    is_reviewed = serializers.BooleanField(required=False)
    review_seconds = serializers.FloatField(required=False, min_value=0, max_value=24 * 3600)
    version = serializers.IntegerField(required=False, min_value=0, help_text="instead of an If-Match header")

    def validate_transcript(self, value):
        try:
            return validate_transcript(value)
        except ReviewInputError as e:
            raise serializers.ValidationError(e.message) from None


class ReviewSerializer(serializers.Serializer):
    review_seconds = serializers.FloatField(required=False, min_value=0, max_value=24 * 3600)
    version = serializers.IntegerField(required=False, min_value=0)


class TrashSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    clip_id = serializers.IntegerField(read_only=True)
    transcript = serializers.CharField(read_only=True, allow_null=True)
    deleted_at = serializers.DateTimeField(read_only=True)
    deleted_by = serializers.CharField(read_only=True)


class TrashedSerializer(serializers.Serializer):
    trash_id = serializers.IntegerField()
    clip_id = serializers.IntegerField()


class PurgeSerializer(serializers.Serializer):
    older_than_days = serializers.FloatField(required=False, min_value=0, help_text="omit to empty the whole trash")


class PurgedSerializer(serializers.Serializer):
    purged = serializers.IntegerField()


class PeaksQuerySerializer(serializers.Serializer):
    width = serializers.IntegerField(required=False, min_value=1, max_value=4000, default=800)


class PeaksSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    duration_s = serializers.FloatField()
    peaks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))


class DayCountSerializer(serializers.Serializer):
    date = serializers.DateField()
    count = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    unreviewed = serializers.IntegerField()
    trained = serializers.IntegerField()
    reviewed_untrained = serializers.IntegerField()
    hours = serializers.FloatField(help_text="audio hours of scanned clips")
    reviewed_hours = serializers.FloatField()
    avg_review_seconds = serializers.FloatField(allow_null=True)
    reviewed_today = serializers.IntegerField()
    per_day = DayCountSerializer(many=True)
    per_session = serializers.DictField()
    scanned = serializers.IntegerField(help_text="clips whose duration is known")
    unscanned = serializers.IntegerField(help_text="run `manage.py scanclips` to measure them all")


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
