"""`manage.py promotemodel VERSION [--force] [--quantization Q] [--enqueue]`: make a registered model live.

Exports and verifies it first when needed, then applies the same guard as the models page: a
candidate worse than the live model on the same test clips is refused unless --force (recorded).
It runs here with a tqdm bar (the terminal path), holding the same deployment slot as the page's
Celery task; --enqueue hands it to the Celery `data` worker instead and prints the task id.
"""
from django.core.management.base import BaseCommand, CommandError

from training_jobs import selectors, services
from training_jobs.models import ModelVersion
from training_jobs.pipeline.export import QUANTIZATIONS


class ProgressBar:
    """A tqdm bar per faster-whisper scoring pass (the export check, the live model on the same clips)."""

    def __init__(self, stream):
        self.stream, self.bar = stream, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None or done == 1:
            self.close()
            self.bar = tqdm(total=total, desc="faster-whisper on the test clips", unit="clip", file=self.stream)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


STEPS = {"exporting": "converting to CTranslate2", "verifying": "checking the export with faster-whisper",
         "comparing": "scoring the live model on the same clips", "switching": "switching the live model"}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


class Command(BaseCommand):
    help = "Promote a model version (id or name, e.g. run-12) to the live model directory."

    def add_arguments(self, parser):
        parser.add_argument("version", help="model version id or name (see the models page or /api/models)")
        parser.add_argument("--force", action="store_true", help="promote even if worse than the live model (recorded)")
        parser.add_argument("--quantization", choices=QUANTIZATIONS, help="re-export with this quantization first")
        parser.add_argument("--enqueue", action="store_true",
                            help="queue it for the Celery data worker (GET /api/models/tasks/<id> follows it)")

    def step(self, name: str) -> None:
        self.stderr.write(f"{STEPS.get(name, name)}…")

    def handle(self, *args, version, force, quantization, enqueue=False, **options):
        try:
            target = selectors.model_get(version)
        except ModelVersion.DoesNotExist:
            raise CommandError(f"no model version {version!r}; list them at /models/ or /api/models") from None
        if enqueue:
            try:
                task_id = services.model_action_enqueue("promote", version=target, force=force, quantization=quantization)
            except services.RunError as e:
                raise CommandError(str(e)) from None
            self.stdout.write(f"Queued the promotion of {target.name}: task {task_id} "
                              f"(follow it at /api/models/tasks/{task_id} or on the models page)")
            return
        self.stdout.write(f"Promoting {target.name}: export, faster-whisper check, comparison with the live model")
        bar = ProgressBar(self.stderr._out)
        try:
            target = services.model_promote(version=target, force=force, quantization=quantization, on_clip=bar,
                                            on_step=self.step)
        except services.RunError as e:
            raise CommandError(str(e)) from None
        finally:
            bar.close()
        guard, export = target.guard, target.export
        self.stdout.write(f"export {export['quantization']}: faster-whisper WER {_pct(export.get('fw_wer'))}, "
                          f"transformers {_pct(export.get('transformers_wer'))}")
        self.stdout.write(f"live before: {guard.get('live_version')} WER {_pct(guard.get('live_wer'))} "
                          f"on {guard.get('clips')} clips")
        self.stdout.write(self.style.SUCCESS(f"{target.name} is live ({target.deploy_name})"
                                             + (" [forced]" if target.note else "")))
