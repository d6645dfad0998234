"""`manage.py rollbackmodel`: back to the previous live model in one atomic switch."""
from django.core.management.base import BaseCommand, CommandError

from training_jobs import services


class Command(BaseCommand):
    help = "Make the previous live model live again (the current one becomes the backup)."

    def handle(self, *args, **options):
        try:
            switch = services.model_rollback()
        except services.RunError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(self.style.SUCCESS(f"{switch.live} is live again (backup: {switch.previous})"))
