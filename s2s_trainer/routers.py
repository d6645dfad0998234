"""Send the clip models to the live app's SQLite file and everything else to `default`."""

S2S_APP_LABELS = {"review"}


class S2SRouter:
    """`review` models live in the `s2s` database, which Django never migrates.

    The clip table belongs to the live app; our side tables are created by `review.schema`.
    """

    def db_for_read(self, model, **hints):
        return "s2s" if model._meta.app_label in S2S_APP_LABELS else "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        return (obj1._state.db == obj2._state.db) or None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == "s2s":
            return False
        return app_label not in S2S_APP_LABELS
