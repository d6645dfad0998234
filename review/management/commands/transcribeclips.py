"""Re-transcribe clips with the current (or a chosen) model, storing confidences and suggestions.

    manage.py transcribeclips                      # unreviewed clips, the live model (else the base)
    manage.py transcribeclips --all --limit 500    # any clip, the first 500
    manage.py transcribeclips --model DIR          # a faster-whisper directory of your choice
    manage.py transcribeclips --enqueue            # hand it to the Celery `data` worker instead

Afterwards the review queue's `priority` order and the review page's suggestions use the results.
"""
from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from review.filters import ClipFilters
from review.quality_selectors import AsrModelNotFound, asr_model_dir, asr_model_id
from review.quality_services import clips_transcribe
from review.selectors import clip_ids


class Command(BaseCommand):
    help = "Re-transcribe clips (faster-whisper) to score confidence and suggest transcripts."

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help="faster-whisper model directory (default: live model, else base)")
        parser.add_argument("--all", action="store_true", help="reviewed clips too (default: unreviewed only)")
        parser.add_argument("--limit", type=int, default=None, help="at most this many clips, in id order")
        parser.add_argument("--id-min", type=int, default=None, help="only clips with this id or above")
        parser.add_argument("--id-max", type=int, default=None, help="only clips with this id or below")
        parser.add_argument("--enqueue", action="store_true", help="run on the Celery worker and return")

    def handle(self, *args, model, all, limit, id_min, id_max, enqueue, **options):
        try:
            model_dir = asr_model_dir(model)
        except AsrModelNotFound as e:
            raise CommandError(str(e)) from None
        ids = clip_ids(ClipFilters(reviewed=None if all else False, id_min=id_min, id_max=id_max))[:limit]
        if not ids:
            self.stdout.write("No clips to re-transcribe.")
            return
        if enqueue:
            from review.tasks import clips_transcribe as task

            result = task.delay(ids, str(model_dir) if model else None)
            self.stdout.write(f"Queued {len(ids)} clips for {asr_model_id(model_dir)}: task {result.id}")
            return
        with tqdm(total=len(ids), unit="clip", desc=asr_model_id(model_dir), disable=options.get("verbosity", 1) == 0) as bar:
            result = clips_transcribe(ids, model=str(model_dir), on_progress=lambda p: bar.update(p.done - bar.n))
        self.stdout.write(self.style.SUCCESS(
            f"Re-transcribed {result['transcribed']} clips with {result['model']} ({result['failed']} failed to decode)."
        ))
