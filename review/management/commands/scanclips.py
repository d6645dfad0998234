"""Measure every clip not measured yet, so durations, hours and problem flags are complete.

The API measures a clip the first time someone opens it; statistics never decode audio (they
must stay fast on 20,000 clips), so `hours` counts measured clips only and `unscanned` says how
many remain. It then brings the cached quality checks (review.quality) of every changed clip up
to date, which the list's `check` filter and `priority` order read. Run this after importing a capture file, or on a timer; it is idempotent, works
in short batches and is safe while the live app and reviewers write.
"""
import time

from django.core.management import BaseCommand

from review.quality_services import quality_refresh_stale
from review.services import clipmeta_fill


class Command(BaseCommand):
    help = "Decode and measure clips that lack cached duration/metrics (batches; safe to rerun)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=50, help="clips decoded per write transaction")
        parser.add_argument("--limit", type=int, default=None, help="stop after this many clips")

    def handle(self, *args, batch, limit, **options):
        started = time.monotonic()

        def report(scanned, problems):
            if options.get("verbosity", 1) >= 2:
                self.stdout.write(f"  {scanned} measured, {problems} with problems")

        result = clipmeta_fill(limit=limit, batch=max(1, batch), on_batch=report)
        checked = quality_refresh_stale(limit=limit)
        self.stdout.write(self.style.SUCCESS(
            f"Measured {result['scanned']} clips ({result['problems']} with problems), ran the quality checks"
            f" of {checked} in {time.monotonic() - started:.1f} s."
        ))
