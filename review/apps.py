from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = "Clip review"

    def ready(self):
        from django.db.backends.signals import connection_created

        from . import schema

        connection_created.connect(schema.on_connection_created, dispatch_uid="review.schema")
