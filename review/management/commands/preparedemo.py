"""First-start set-up for the run command: a demo clip database and a login to use it."""
import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

DEMO_USER, DEMO_PASSWORD = "demo", "demo"


class Command(BaseCommand):
    help = "Create the demo database (when S2S_DATABASE is unset) and a demo login, then print the URL."

    def handle(self, *args, **options):
        path = Path(settings.S2S_DATABASE)
        using_demo = path == Path(settings.S2S_DEFAULT_DEMO_DATABASE)
        if using_demo and not path.exists():
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
