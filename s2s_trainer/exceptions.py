"""One JSON error shape for the API, including the database-locked case (503, retry later)."""
from django.db import OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler


def api_exception_handler(exc, context):
    if isinstance(exc, OperationalError) and "locked" in str(exc).lower():
        return Response(
            {"error": "database_locked", "detail": "The clip database is busy (the live app is writing). Nothing was saved; retry in a moment."},
            status=503,
            headers={"Retry-After": "1"},
        )
    return exception_handler(exc, context)
