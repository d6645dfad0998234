"""The training dashboard page. Everything live on it comes from REST and the websocket; this
view only renders the first picture (data status, last run, the form built from TrainConfig)."""
from __future__ import annotations

import dataclasses

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from training_jobs import selectors
from training_jobs.pipeline.config import PRESETS, TrainConfig

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
