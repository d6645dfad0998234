"""Fixtures of the review app's tests."""
import pytest
from django.test import Client


@pytest.fixture
def admin_client_s2s(django_user_model):
    """A staff (superuser) browser session for the admin pages."""
    user = django_user_model.objects.create_superuser("root", "", "root-pass-123")
    client = Client()
    client.force_login(user)
    return client
