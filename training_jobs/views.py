"""The training dashboard page. Everything live on it comes from REST and the websocket; this
view only renders the first picture (data status, last run, the form built from TrainConfig)."""
from __future__ import annotations

import dataclasses
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from training_jobs import selectors
from training_jobs.pipeline.config import PRESETS, TrainConfig
from training_jobs.pipeline.export import QUANTIZATIONS

# The options shown up front (the spec's dashboard); the rest go under "Advanced".
MAIN_FIELDS = ("base_model", "learning_rate", "batch_size", "epochs", "val_split")
LABELS = {"val_split": "Validation split", "test_split": "Test split", "epochs": "Max epochs", "lora": "LoRA",
          "lora_rank": "LoRA rank", "grad_accum": "Gradient accumulation", "augment_noise_snr_db": "Augment noise SNR (dB)",
          "eval_every": "Validate every", "num_workers": "Data loader workers"}


def config_form_fields() -> tuple[list[dict], list[dict]]:
    """One dict per TrainConfig field with what a form input needs (type, bounds, help)."""
    main, advanced = [], []
    for f in dataclasses.fields(TrainConfig):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        meta = f.metadata
        item = {
            "name": f.name, "label": LABELS.get(f.name, f.name.replace("_", " ").capitalize()), "help": meta.get("help", ""),
            "kind": {"bool": "checkbox", "int": "number", "float": "number"}.get(kind, "text"),
            # Numbers as Python writes them (1e-05), not localized by the template.
            "default": f.default if kind == "bool" else str(f.default), "min": meta.get("min"), "max": meta.get("max"),
            "step": "1" if kind == "int" else "any", "choices": meta.get("choices"), "type": kind,
        }
        (main if f.name in MAIN_FIELDS else advanced).append(item)
    main.sort(key=lambda item: MAIN_FIELDS.index(item["name"]))
    return main, advanced


@login_required
def dashboard(request):
    main, advanced = config_form_fields()
    last = selectors.run_last_finished()
    metrics = last.metrics if last else {}
    return render(request, "training/dashboard.html", {
        "last_wer": metrics.get("new_wer", metrics.get("wer")),
        "data": selectors.data_status(),
        "current": selectors.run_current(),
        "last_finished": last,
        "model": selectors.current_model(),
        "main_fields": main,
        "advanced_fields": advanced,
        "presets": PRESETS,
    })


# -- the models page: plain forms that POST to the same services as the API and commands ---------

def _model_action(request, action, success: str, **kwargs) -> bool:
    """Run a service from a form and flash its outcome (the error a person can act on, or success)."""
    from training_jobs import services

    try:
        result = action(user=request.user, **kwargs)
    except services.RunError as e:
        messages.error(request, str(e))
        return False
    messages.success(request, success.format(result=result))
    return True


@login_required
def model_list(request):
    versions = list(selectors.model_list())
    return render(request, "training/models.html", {
        "versions": versions, "live": selectors.live_status(), "events": selectors.model_events(20),
        "running": selectors.deploy_action_current(),
        "quantizations": QUANTIZATIONS, "default_quantization": settings.S2S_EXPORT_QUANTIZATION,
    })


@login_required
def model_detail(request, version_id: int):
    version = _version_or_404(version_id)
    return render(request, "training/model_detail.html", {
        "version": version, "clips": list(selectors.version_clips(version).values()), "live": selectors.live_status(),
        "running": selectors.deploy_action_current(),
        "quantizations": QUANTIZATIONS, "default_quantization": version.export.get("quantization")
        or settings.S2S_EXPORT_QUANTIZATION, "export_info": {k: v for k, v in version.export.items() if k != "clips"},
    })


@login_required
def model_compare(request):
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    try:
        va, vb = selectors.model_get(a), selectors.model_get(b)
    except (ValueError, ObjectDoesNotExist):
        messages.error(request, "Pick two model versions to compare.")
        return redirect("model-list")
    return render(request, "training/model_compare.html", {"cmp": selectors.model_compare(va, vb), "a": va, "b": vb})


@login_required
@require_POST
def model_promote(request, version_id: int):
    """Without script: queue it and come back to the page, which names the running action (the
    page's module posts to the API instead and shows the progress)."""
    from training_jobs import services

    version = _version_or_404(version_id)
    _model_action(request, partial(services.model_action_enqueue, "promote"),
                  f"Promotion of {version.name} queued: export, faster-whisper check, comparison, switch.",
                  version=version, force=request.POST.get("force") == "on",
                  quantization=request.POST.get("quantization") or None)
    return redirect("model-detail", version_id=version_id)


@login_required
@require_POST
def model_export(request, version_id: int):
    from training_jobs import services

    version = _version_or_404(version_id)
    _model_action(request, partial(services.model_action_enqueue, "export"),
                  f"Export of {version.name} queued: CTranslate2 conversion, then faster-whisper on the test clips.",
                  version=version, quantization=request.POST.get("quantization") or None)
    return redirect("model-detail", version_id=version_id)


@login_required
@require_POST
def model_rollback(request):
    from training_jobs import services

    _model_action(request, services.model_rollback, "Rolled back: {result.live} is live again.")
    return redirect("model-list")


@login_required
def model_delete(request, version_id: int):
    """GET: the confirmation form (type the name); POST: delete."""
    from training_jobs import services

    version = _version_or_404(version_id)
    if request.method == "POST":
        if _model_action(request, services.model_delete, f"{version.name} deleted.", version=version,
                         confirm=request.POST.get("confirm", "").strip()):
            return redirect("model-list")
    return render(request, "training/model_confirm_delete.html", {"version": version})


def _version_or_404(version_id: int):
    try:
        return selectors.model_get(version_id)
    except ObjectDoesNotExist:
        raise Http404("no such model version") from None
