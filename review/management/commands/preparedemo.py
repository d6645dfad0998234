"""First-start set-up for the run command: a demo clip database and a login to use it."""
import os
import sqlite3
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from review.schema import CLIP_TABLE

DEMO_USER, DEMO_PASSWORD = "demo", "demo"


def has_clip_table(path: Path) -> bool:
    """False for a missing file and for an empty one: any SQLite connection to a missing path
    (a worker started before the demo existed) leaves an empty file, which is not demo data."""
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (CLIP_TABLE,)).fetchone() is not None
    finally:
        conn.close()


class Command(BaseCommand):
    help = "Create the demo database (when S2S_DATABASE is unset) and a demo login, then print the URL."

    def handle(self, *args, **options):
        path = Path(settings.S2S_DATABASE)
        using_demo = path == Path(settings.S2S_DEFAULT_DEMO_DATABASE)
        if using_demo and not has_clip_table(path):
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            self.stdout.write(f"No S2S_DATABASE set: creating demo clips in {path} ...")
            call_command("makedemodb", str(path), clips=40)
            # Durations and audio metrics cached up front: the first open of a clip is as quick as any.
            call_command("scanclips")
        user_model = get_user_model()
        created = False
        if not user_model.objects.exists():
            user_model.objects.create_superuser(DEMO_USER, "", DEMO_PASSWORD)
            created = True
        host = os.environ.get("S2S_HOST", "127.0.0.1")
        port = os.environ.get("S2S_PORT", "8080")
        self.stdout.write(self.style.SUCCESS(f"S2S Trainer on http://{host}:{port}/  (clips: {path})"))
        if created:
            self.stdout.write(f"Log in as {DEMO_USER} / {DEMO_PASSWORD} (change it in /admin/).")
