"""`manage.py promotemodel VERSION [--force] [--quantization Q]`: make a registered model live.

Exports and verifies it first when needed, then applies the same guard as the models page: a
candidate worse than the live model on the same test clips is refused unless --force (recorded).
"""
from django.core.management.base import BaseCommand, CommandError

from training_jobs import selectors, services
from training_jobs.models import ModelVersion
from training_jobs.pipeline.export import QUANTIZATIONS


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


class Command(BaseCommand):
    help = "Promote a model version (id or name, e.g. run-12) to the live model directory."

    def add_arguments(self, parser):
        parser.add_argument("version", help="model version id or name (see the models page or /api/models)")
        parser.add_argument("--force", action="store_true", help="promote even if worse than the live model (recorded)")
        parser.add_argument("--quantization", choices=QUANTIZATIONS, help="re-export with this quantization first")

    def handle(self, *args, version, force, quantization, **options):
        try:
            target = selectors.model_get(version)
        except ModelVersion.DoesNotExist:
            raise CommandError(f"no model version {version!r}; list them at /models/ or /api/models") from None
        self.stdout.write(f"Promoting {target.name}: exporting and checking against the live model...")
        try:
            target = services.model_promote(version=target, force=force, quantization=quantization)
        except services.RunError as e:
            raise CommandError(str(e)) from None
        guard, export = target.guard, target.export
        self.stdout.write(f"export {export['quantization']}: faster-whisper WER {_pct(export.get('fw_wer'))}, "
                          f"transformers {_pct(export.get('transformers_wer'))}")
        self.stdout.write(f"live before: {guard.get('live_version')} WER {_pct(guard.get('live_wer'))} "
                          f"on {guard.get('clips')} clips")
        self.stdout.write(self.style.SUCCESS(f"{target.name} is live ({target.deploy_name})"
                                             + (" [forced]" if target.note else "")))
