"""The model registry on small real models: registration after a run, the REST API, the models
pages, clip-by-clip comparison, deletion with confirmation, and the two commands. Export and
promotion through the API and the pages are Celery tasks: test_model_tasks.py.

The models are tiny random Whispers converted by CTranslate2's own converter; they transcribe
nonsense, so their exports do not pass the faster-whisper verification and promoting them needs
`force` (which is itself what these tests check). The real-weights flow is in test_model_deploy.py.
"""
import json

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import S2S, tone
from tests.pipeline.training_fixtures import make_tiny_whisper
from tests.training_jobs.conftest import REDIS_TEST_URL
from tests.training_jobs.registry_fixtures import make_snapshot, succeeded_run
from training_jobs import services
from training_jobs.models import ModelEvent, ModelStatus, ModelVersion
from training_jobs.pipeline import deploy

REFS = ["turn the music down", "open the window please", "call me back tomorrow"]


@pytest.fixture
def live_settings(training_env, settings, tmp_path):
    """Test Redis (and channel layer), a live directory and artifacts of this test's own, and a
    channel of its own: Redis pub/sub channels are shared by all databases of a server."""
    import uuid

    settings.S2S_LIVE_MODEL_DIR = tmp_path / "live"
    settings.S2S_ARTIFACTS = tmp_path / "artifacts"
    settings.S2S_LIVE_CHANNEL = f"s2s:live-model:test-{uuid.uuid4().hex[:8]}"
    return settings


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return make_snapshot(tmp_path_factory.mktemp("snapshot"), REFS, [tone(1.0, 180 + 40 * i) for i in range(3)])


@pytest.fixture
def make_version(tmp_path, snapshot, live_settings):
    def make(name: str, new_hyps: list[str], base_hyps=("turn music down", "open window", "call back")):
        snap, ids = snapshot
        model_dir = make_tiny_whisper(tmp_path / name / "model", seed=len(name))
        run = succeeded_run(tmp_path / name, model_dir, snap, ids, REFS, list(base_hyps), new_hyps)
        return services.model_register_run(run)

    return make


@pytest.mark.django_db
def test_a_succeeded_run_registers_a_candidate_with_its_metrics_size_and_clips(make_version, tmp_path):
    version = make_version("a", ["turn the music down", "open the window", "call me back tomorrow"])
    assert version.name == f"run-{version.run_id}" and version.status == ModelStatus.CANDIDATE
    assert version.metrics["wer"] == pytest.approx(1 / 12) and version.metrics["base_wer"] == pytest.approx(5 / 12)
    assert version.size_bytes == sum(f.stat().st_size for f in (tmp_path / "a" / "model").iterdir())
    assert [c["text"] for c in version.clip_results][1] == "open the window"
    assert version.snapshot_hash == "snap-a"
    assert services.model_register_run(version.run).pk == version.pk  # a redelivered finish: same row
    version.run.artifacts = {"model_dir": str(tmp_path / "nothing-here")}
    version.run.pk = None
    version.run.save()
    assert services.model_register_run(version.run) is None  # a run without a Whisper directory


@pytest.mark.django_db
def test_api_lists_shows_and_compares_versions_clip_by_clip(make_version, api):
    a = make_version("a", ["turn the music down", "open the window", "call me back tomorrow"])
    b = make_version("bb", ["turn the music up", "open the window please", "call me back tomorrow"])
    listed = api.get("/api/models").json()["results"]
    assert [v["name"] for v in listed] == [b.name, a.name] and "clips" not in listed[0]["export"]
    detail = api.get(f"/api/models/{a.name}").json()
    assert detail["id"] == a.pk and len(detail["clip_results"]) == 3
    assert api.get("/api/models/run-999").status_code == 404

    cmp = api.get(f"/api/models/compare?a={a.pk}&b={b.name}").json()
    assert cmp["shared_clips"] == 3
    assert cmp["counts"] == {"a_right": 1, "b_right": 1, "both_wrong": 0, "both_right": 1}
    first, second = cmp["clips"][:2]
    assert first["verdict"] == "a_right" and first["reference"] == "turn the music down"
    assert first["b_text"] == "turn the music up"
    assert second["verdict"] == "b_right" and second["a_text"] == "open the window"
    assert api.get(f"/api/models/compare?a={a.pk}").status_code == 400


@pytest.mark.django_db
def test_delete_needs_the_typed_name_and_removes_the_files(make_version, api):
    version = make_version("a", REFS)
    model_dir = version.model_dir
    answer = api.delete(f"/api/models/{version.pk}?confirm=wrong")
    assert answer.status_code == 400 and version.name in answer.json()["detail"]
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    assert api.delete(f"/api/models/{version.pk}?confirm={version.name}").status_code == 204
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    import os

    assert not os.path.exists(model_dir)
    assert ModelEvent.objects.get(action="deleted").version_name == version.name


def read_messages(listener, n: int, timeout: float = 5.0) -> list[dict]:
    """The next n published messages (JSON-decoded); fewer when the timeout passes first."""
    import time

    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.2)  # None for the subscription confirmation too
        if message:
            out.append(json.loads(message["data"]))
    return out


@pytest.mark.django_db
def test_commands_promote_and_roll_back(make_version, capsys):
    first = make_version("a", REFS)
    second = make_version("bb", REFS)
    with pytest.raises(CommandError, match="not promoted"):
        call_command("promotemodel", first.name, "--quantization", "int8")
    with pytest.raises(CommandError, match="no model version"):
        call_command("promotemodel", "run-999")
    with pytest.raises(CommandError, match="no previous live model"):
        call_command("rollbackmodel")
    call_command("promotemodel", first.name, "--force")
    call_command("promotemodel", str(second.pk), "--force")
    out = capsys.readouterr().out
    assert f"{second.name} is live ({second.name}-int8_float16) [forced]" in out  # the default quantization
    call_command("rollbackmodel")
    assert f"{first.name}-int8 is live again (backup: {second.name}-int8_float16)" in capsys.readouterr().out
    assert deploy.live_name(services.live_root()) == f"{first.name}-int8"


@pytest.mark.django_db
def test_models_pages_show_versions_compare_and_confirm_deletion(make_version, client, alice):
    a = make_version("a", ["turn the music down", "open the window", "call me back tomorrow"])
    b = make_version("bb", ["turn the music up <b>", "open the window please", "call me back tomorrow"])
    assert client.get("/models/").status_code == 302  # login required
    client.force_login(alice)
    page = client.get("/models/").content.decode()
    assert a.name in page and b.name in page and "nothing promoted yet" in page and "Roll back" not in page
    detail = client.get(f"/models/{a.pk}/").content.decode()
    assert "Promote to live" in detail and "not exported yet" in detail and "open the window" in detail
    compare = client.get(f"/models/compare?a={a.pk}&b={b.pk}").content.decode()
    assert "only " + a.name + " right" in compare and "turn the music up &lt;b&gt;" in compare
    assert client.get("/models/compare?a=x&b=y", follow=True).redirect_chain[-1][0] == "/models/"

    confirm = client.post(f"/models/{a.pk}/delete", {"confirm": "nope"})
    assert confirm.status_code == 200 and "type the version name" in confirm.content.decode()
    done = client.post(f"/models/{a.pk}/delete", {"confirm": a.name}, follow=True)
    assert f"{a.name} deleted." in done.content.decode() and not ModelVersion.objects.filter(pk=a.pk).exists()
    rollback = client.post("/models/rollback", follow=True).content.decode()
    assert "no previous live model" in rollback


@pytest.mark.parametrize("step, live_after_kill", [("backed_up", "first"), ("switched", "second")])
@pytest.mark.django_db(transaction=True)
def test_a_promotemodel_process_killed_mid_promotion_keeps_a_live_model_and_a_retry_completes_it(
        make_version, live_settings, step, live_after_kill):
    """`manage.py promotemodel` in a real process, SIGKILLed at a named step (S2S_DEPLOY_KILL_AT):
    the live directory still serves a complete model, and running the command again finishes the
    promotion, registry included."""
    import os
    import signal
    import subprocess
    import sys

    from tests.training_jobs.conftest import ROOT, _db_url_for_worker

    versions = {"first": make_version("a", REFS), "second": make_version("bb", REFS)}
    call_command("promotemodel", versions["first"].name, "--force")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "s2s_trainer.settings",
           "DATABASE_URL": _db_url_for_worker(),  # the test database, SQLite or PostgreSQL
           "S2S_LIVE_MODEL_DIR": str(live_settings.S2S_LIVE_MODEL_DIR),
           "S2S_ARTIFACTS": str(live_settings.S2S_ARTIFACTS), "REDIS_URL": REDIS_TEST_URL,
           "S2S_LIVE_CHANNEL": live_settings.S2S_LIVE_CHANNEL}
    command = [sys.executable, str(ROOT / "manage.py"), "promotemodel", versions["second"].name, "--force"]

    killed = subprocess.run(command, env={**env, deploy.KILL_AT_ENV: step}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for version in versions.values():
        version.refresh_from_db()  # the second one was exported (and recorded) before the kill
    live = deploy.live_model_dir(services.live_root())
    assert live is not None and live.name == versions[live_after_kill].deploy_name
    assert deploy.is_complete_model(live)
    assert versions["second"].status == "candidate"  # the registry changes only after the switch

    retried = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert deploy.live_name(services.live_root()) == versions["second"].deploy_name
    assert deploy.previous_name(services.live_root()) == versions["first"].deploy_name
    assert ModelVersion.objects.get(status="live") == versions["second"]


@S2S
def test_the_dashboard_names_the_promoted_model_as_current(make_version, s2s_db, client, alice):
    version = make_version("a", REFS)
    client.force_login(alice)
    assert "(live)" not in client.get("/training/").content.decode()
    services.model_promote(version=version, force=True, quantization="int8")
    html = client.get("/training/").content.decode()
    assert f"{version.name}-int8 (live)" in html and "/models/" in html


@pytest.mark.django_db
def test_the_live_models_score_is_cached_per_live_version(make_version):
    """The guard scores the live model on the candidate's clips once per live version: with the
    candidate's snapshot gone, the cached score still answers; after a new promotion it must
    measure again (and says it cannot)."""
    first, second, third = make_version("a", REFS), make_version("bb", REFS), make_version("ccc", REFS)
    services.model_promote(version=first, force=True)
    services.model_export(version=second)
    guard = services.model_guard(second)
    assert guard["live_version"] == first.deploy_name and 0 <= guard["live_wer"]
    second.snapshot_path = "/nonexistent/snapshot"
    second.save()
    assert services.model_guard(second) == guard
    services.model_promote(version=third, force=True)
    with pytest.raises(services.ModelError, match="snapshot .* is gone"):
        services.model_guard(second)
