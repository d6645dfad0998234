"""`manage.py starttraining`: snapshot the reviewed clips and fine-tune Whisper in the foreground.

Every `TrainConfig` field is an option, generated from the dataclass (name, type, default, help,
choices), so this command, the dashboard form and the REST API can never disagree. Clips are
marked `is_trained = 1` (after a backup of the capture file) only when the run succeeds.
Ctrl-C asks the loop to stop at the next step boundary; it writes a checkpoint, and
`--resume <output dir>` continues from it.
"""
from __future__ import annotations

import argparse
import json
import signal
import typing
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from training_jobs.pipeline.config import TrainConfig
from training_jobs.pipeline.progress import LocalControl, Progress, RunStopped

ALIASES = {"learning_rate": ["--lr"]}
TYPES = {"int": int, "float": float, "str": str, "bool": bool}
SNAPSHOT_DIR = "snapshot"
CHECKPOINT_DIR = "checkpoints"


def config_options(parser) -> None:
    """One option per TrainConfig field: --batch-size, --lora/--no-lora, ... (default None = not given)."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("training options (TrainConfig)")
    for f in fields(TrainConfig):
        kind = hints[f.name]
        default = f.default if f.default is not MISSING else None
        names = [f"--{f.name.replace('_', '-')}", *ALIASES.get(f.name, [])]
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        if kind is bool:
            group.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(*names, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"),
                               metavar=f.name.upper(), help=help_text)


def config_from_options(options: dict) -> TrainConfig:
    given = {f.name: options[f.name] for f in fields(TrainConfig) if options.get(f.name) is not None}
    try:
        return TrainConfig.from_dict(given).validate()
    except ValueError as e:
        raise CommandError(str(e)) from None


class TqdmProgress:
    """Progress listener: one tqdm bar per stage, loss / lr / WER in the postfix."""

    def __init__(self, stream, enabled: bool = True):
        self.stream, self.enabled, self.bar, self.stage, self.postfix = stream, enabled, None, None, {}

    def __call__(self, event: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if not event.total or event.stage not in ("preparing", "loading", "training"):
            if event.message:  # a stage without steps: one line, no bar
                self.close()
                self.stage = None
                tqdm.write(f"{event.stage}: {event.message}", file=self.stream)
            return
        if event.stage != self.stage or (self.bar is not None and event.total and self.bar.total != event.total):
            self.close()
            self.stage = event.stage
            self.postfix: dict[str, str] = {}
            self.bar = tqdm(total=event.total or None, desc=event.stage, file=self.stream, dynamic_ncols=True,
                            leave=event.stage in ("preparing", "training"))
        self.bar.n = event.step
        if event.train_loss is not None:
            self.postfix["loss"] = f"{event.train_loss:.3f}"
        if event.learning_rate is not None:
            self.postfix["lr"] = f"{event.learning_rate:.2e}"
        if event.wer is not None:  # kept until the next validation
            self.postfix["val_wer"] = f"{event.wer:.1%}"
        self.bar.set_postfix(self.postfix, refresh=False)
        description = f"{event.stage}: {event.message}" if event.message and event.wer is None else event.stage
        self.bar.set_description_str(description[:60], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = ("Fine-tune Whisper on the reviewed clips: prepare a data snapshot, train, compare base vs new on "
            "the test split, save the model, then mark the clips used as trained (after a backup).")

    def add_arguments(self, parser):
        config_options(parser)
        parser.add_argument("--database", help="S2S capture database (default: settings.S2S_DATABASE).")
        parser.add_argument("--output", help="Run directory (default: S2S_ARTIFACTS/trained/<UTC timestamp>).")
        parser.add_argument("--resume", metavar="OUTPUT_DIR",
                            help="Continue a stopped or killed run from its checkpoint; reuses its snapshot and config.")
        parser.add_argument("--enqueue", action="store_true",
                            help="Queue the run on the Celery workers (the dashboard shows it) instead of training here.")
        parser.add_argument("--no-mark-trained", action="store_true",
                            help="Leave is_trained untouched even when the run succeeds.")
        parser.add_argument("--keep-checkpoints", action="store_true", help="Keep checkpoints after success.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars (logs, CI).")

    def handle(self, *args, **options):
        database = Path(options["database"] or settings.S2S_DATABASE)
        artifacts = Path(settings.S2S_ARTIFACTS)
        if options["resume"]:
            output = Path(options["resume"])
            manifest = output / SNAPSHOT_DIR / "manifest.json"
            if not manifest.is_file():
                raise CommandError(f"nothing to resume in {output}: no {SNAPSHOT_DIR}/manifest.json")
            config = TrainConfig.from_dict(json.loads(manifest.read_text())["config"])
        else:
            config = config_from_options(options)
        if options["enqueue"]:
            return self.enqueue(config)

        output = output if options["resume"] else Path(
            options["output"] or artifacts / "trained" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
        progress = TqdmProgress(self.stderr._out, enabled=not options["no_progress"])
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars would break ours
        control = LocalControl()
        try:  # Ctrl-C: stop at the next step boundary with a checkpoint, rather than lose the run
            previous = signal.signal(signal.SIGINT, lambda *_: control.stop())
        except ValueError:  # not the main thread (called from code): no handler
            previous = None
        try:
            snapshot_dir = output / SNAPSHOT_DIR
            if not options["resume"]:
                snapshot_dir = self.prepare(config, database, snapshot_dir, progress)
            from training_jobs.pipeline.train import TrainingError, train

            try:
                result = train(config, snapshot_dir, output, checkpoint_dir=output / CHECKPOINT_DIR,
                               cache_dir=artifacts / "cache", on_progress=progress, control=control,
                               keep_checkpoints=options["keep_checkpoints"])
            except RunStopped as e:
                progress.close()
                self.stdout.write(self.style.WARNING(f"{e}\nContinue with: manage.py starttraining --resume {output}"))
                return
            except (TrainingError, ValueError) as e:
                raise CommandError(str(e)) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            progress.close()

        self.report(result)
        if options["no_mark_trained"]:
            self.stdout.write("is_trained left untouched (--no-mark-trained).")
        else:
            from training_jobs.pipeline.source import mark_trained

            backup = mark_trained(database, result.trained_clip_ids, artifacts / "backups")
            self.stdout.write(f"Marked {len(result.trained_clip_ids)} clips as trained; backup of the database: {backup}")

    def prepare(self, config: TrainConfig, database: Path, snapshot_dir: Path, progress) -> Path:
        from training_jobs.pipeline.data import snapshot_from_database
        from training_jobs.pipeline.models import ModelNotFoundError
        from training_jobs.pipeline.source import SourceError

        try:
            info = snapshot_from_database(database, config, snapshot_dir, cache_dir=Path(settings.S2S_ARTIFACTS) / "cache",
                                          max_seconds=settings.S2S_MAX_CLIP_SECONDS, on_progress=progress)
        except (SourceError, ModelNotFoundError) as e:
            raise CommandError(str(e)) from None
        progress.close()
        counts = info.counts
        if not sum(counts.values()) and not info.excluded:
            raise CommandError(f"no reviewed clips to train on in {database}"
                               + (" (only untrained ones were asked for)" if config.only_untrained else ""))
        self.stdout.write(f"Snapshot {info.manifest_hash}: train {counts['train']}, validation {counts['validation']}, "
                          f"test {counts['test']}, excluded {len(info.excluded)}")
        for e in info.excluded[:20]:
            self.stdout.write(f"  clip {e.id} left out: {e.reason}")
        if len(info.excluded) > 20:
            self.stdout.write(f"  ... and {len(info.excluded) - 20} more (see {snapshot_dir / 'manifest.json'})")
        return info.path

    def report(self, result) -> None:
        from training_jobs.pipeline.report import metrics_table

        self.stdout.write(self.style.SUCCESS(f"Training {result.status}."))
        self.stdout.write(metrics_table(result.metrics))
        self.stdout.write(f"Model: {result.model_dir}")
        for name, path in result.report_paths.items():
            self.stdout.write(f"{name}: {path}")

    def enqueue(self, config: TrainConfig) -> None:
        try:
            from training_jobs.services import run_start
        except ImportError as e:
            raise CommandError(f"--enqueue needs training_jobs.services.run_start (the Celery backbone): {e}") from None
        try:
            run = run_start(config=config.to_dict(), user=None)
        except Exception as e:  # RunConflict and friends carry a message meant for people
            raise CommandError(str(e)) from None
        self.stdout.write(self.style.SUCCESS(f"Queued training run {run.pk}; follow it on the dashboard (/training/)"))
