"""The /training/ page as the server renders it (the live parts are covered by tests/e2e)."""
import re

import pytest
from django.test import Client

from review.models import ClipMeta
from tests.conftest import S2S
from training_jobs.pipeline.config import TrainConfig


@pytest.fixture
def alice_browser(alice):
    client = Client()
    client.force_login(alice)
    return client


@S2S
def test_dashboard_shows_data_status_and_a_form_with_every_training_option(alice_browser, insert_clip):
    ids = [insert_clip(is_reviewed=1), insert_clip(is_reviewed=1, is_trained=1), insert_clip(is_reviewed=1)]
    insert_clip(is_reviewed=0)
    ClipMeta.objects.create(clip_id=ids[0], duration_s=1800.0)

    html = alice_browser.get("/training/").content.decode()

    assert re.search(r'<span id="data-reviewed">3</span> reviewed clips ready', html)
    assert '<span id="data-hours">0.50</span> h, 2 not measured yet' in html
    assert '<span id="data-untrained">2</span> never trained' in html
    assert "4 clips captured" in html
    assert "Never" in html  # last training
    for name in TrainConfig.__dataclass_fields__:
        assert f'name="{name}"' in html, name
    main, advanced = html.split("<details>")
    for name in ("base_model", "learning_rate", "batch_size", "epochs", "val_split"):
        assert f'id="cfg-{name}"' in main
    assert 'id="cfg-lora"' in advanced and 'id="cfg-grad_accum"' in advanced
    assert 'value="1e-05"' in html and 'name="batch_size" data-type="int" value="16"' in html


@S2S
def test_dashboard_has_no_inline_script_or_style(alice_browser):
    response = alice_browser.get("/training/")
    html = response.content.decode()

    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ['<script type="module" src="/static/training/dashboard.js">']
    assert not re.search(r"\son\w+=", html) and " style=" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.django_db(databases=["default", "s2s"])
def test_dashboard_survives_a_missing_clip_database(alice_browser, settings, tmp_path):
    from django.db import connections

    conn = connections["s2s"]
    conn.close()
    old = conn.settings_dict["NAME"]
    conn.settings_dict["NAME"] = str(tmp_path / "missing" / "nope.db")
    try:
        html = alice_browser.get("/training/").content.decode()
    finally:
        conn.close()
        conn.settings_dict["NAME"] = old
    assert "The clip database cannot be read" in html


@pytest.mark.django_db
def test_dashboard_needs_a_login():
    response = Client().get("/training/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


@S2S
def test_dashboard_shows_the_last_run_and_its_model_as_current(alice_browser):
    from django.utils import timezone

    from training_jobs.models import TrainingRun

    done = TrainingRun.objects.create(config={"base_model": "base.en"}, status="succeeded", finished_at=timezone.now(),
                               metrics={"new_wer": 0.12, "base_wer": 0.3},
                               artifacts={"model_dir": "/srv/models/trained/run_7/model"})
    TrainingRun.objects.create(config={}, status="failed", finished_at=timezone.now())

    html = alice_browser.get("/training/").content.decode()

    assert "test WER 0.120 (base 0.300)" in html
    assert f"run {done.pk} (fine-tuned from base.en) · <code>/srv/models/trained/run_7/model</code>" in html
