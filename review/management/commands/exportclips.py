"""Export clips as a training data set: NeMo JSONL + WAVs, CSV + WAVs, or a Hugging Face `datasets` folder.

The same filters as the review page and `GET /api/export` choose the clips; the output is a
folder, or a zip when the path ends in `.zip`. `importclips` reads every format back.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError
from tqdm import tqdm

from review import selectors
from review.export import FORMATS, ExportError, export_to_folder, export_to_zip_file
from review.filters import FILTER_KEYS, parse_filters


class Command(BaseCommand):
    help = "Export clips (filtered like the review page) as NeMo JSONL, CSV or a Hugging Face datasets folder."

    def add_arguments(self, parser):
        parser.add_argument("output", help="a folder to create, or a path ending in .zip")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jsonl",
                            help="jsonl: NeMo manifest + WAVs (default); csv: metadata.csv + WAVs; hf: datasets.load_from_disk folder")
        for key in FILTER_KEYS:
            parser.add_argument(f"--{key.replace('_', '-')}", dest=key, default="",
                                help=f"filter as in GET /api/export?{key}=...")

    def handle(self, *args, output, fmt, **options):
        try:
            filters = parse_filters({k: str(options.get(k) or "") for k in FILTER_KEYS})
        except ValidationError as e:
            raise CommandError(f"bad filter: {e.detail}") from None
        out = Path(output)
        zipped = out.suffix.lower() == ".zip"
        if out.exists() and (zipped or any(out.iterdir())):
            raise CommandError(f"{out} already exists and is not empty: choose a new path")
        ids = selectors.clip_ids(filters)
        with tqdm(total=len(ids), desc=f"exporting ({fmt})", unit="clip") as bar:
            clips = selectors.export_clips(ids)
            write = export_to_zip_file if zipped else export_to_folder
            try:
                summary = write(clips, fmt, out, max_seconds=settings.S2S_MAX_CLIP_SECONDS, on_clip=lambda _: bar.update())
            except ExportError as e:
                raise CommandError(str(e)) from None
        message = (f"Exported {summary.exported} clip(s) ({summary.seconds / 60:.1f} min of audio) as {fmt} to {out}")
        if summary.problems:
            self.stdout.write(self.style.WARNING(f"{message}; {summary.problems} clip(s) without readable audio "
                                                 "are listed in problems.jsonl"))
        else:
            self.stdout.write(self.style.SUCCESS(message))
