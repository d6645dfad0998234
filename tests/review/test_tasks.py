"""The periodic scan: new captures get their duration, metrics and quality checks without anyone
running `scanclips`, so lists, the `check` filter and the priority order see them."""
from django.conf import settings

from review.models import ClipMeta
from review.tasks import clips_scan
from s2s_trainer.celery import app
from tests.conftest import S2S, blob_of, tone

pytestmark = S2S


def test_beat_schedules_the_scan_of_new_clips():
    entry = settings.CELERY_BEAT_SCHEDULE["scan-new-clips"]
    assert entry["task"] in app.tasks  # a registered task, not a typo
    assert entry["schedule"] == settings.S2S_SCAN_SECONDS > 0
    assert entry["options"]["queue"] == "data"


def test_scan_measures_and_checks_only_what_is_new(insert_clip, api):
    clean = insert_clip("please restart the database server", seconds=2.0)
    invented = insert_clip("Thanks for watching!", seconds=2.0)
    broken = insert_clip("the blob is not zlib", blob=b"not zlib at all")

    first = clips_scan.apply().get()

    assert first["scanned"] == 3 and first["problems"] == 1 and first["checked"] >= 3
    assert ClipMeta.objects.using("s2s").get(clip_id=clean).duration_s == 2.0
    assert ClipMeta.objects.using("s2s").get(clip_id=broken).problem
    assert [r["id"] for r in api.get("/api/entries?check=hallucination").json()["results"]] == [invented]

    later = insert_clip("a new capture arrives", blob=blob_of(tone(1.5)))
    second = clips_scan.apply().get()

    assert second["scanned"] == 1
    assert ClipMeta.objects.using("s2s").get(clip_id=later).duration_s == 1.5
