"""What a finished run writes about itself: reproducibility metadata and a readable summary.

`evaluate.write_report` covers the base-vs-new comparison clip by clip; this module adds the run
around it (config, data snapshot, excluded clips and why, timings, versions) so that a model
directory found on disk months later says where it came from.
"""
from __future__ import annotations

import html
import json
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "accelerate", "datasets", "peft", "numpy", "librosa", "jiwer",
            "ctranslate2", "faster-whisper")
REPORT_FILE = "training_report.md"
SUMMARY_FILE = "training_summary.json"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit (with '-dirty' when the tree has changes), or None outside git."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def metrics_table(metrics: dict) -> str:
    """Plain-text table for a terminal: base vs new on the test split, plus the run's figures."""
    rows = [
        ("", "base", "new"),
        ("test WER", _pct(metrics.get("base_wer")), _pct(metrics.get("new_wer"))),
        ("test CER", _pct(metrics.get("base_cer")), _pct(metrics.get("new_cer"))),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width[i]) if i == 0 else cell.rjust(width[i]) for i, cell in enumerate(r))
             for r in rows]
    lines += [
        f"test clips: {metrics.get('test_clips', 0)}   best validation WER: {_pct(metrics.get('best_val_wer'))}"
        f"   optimizer steps: {metrics.get('steps', 0)}",
    ]
    return "\n".join(lines)


def write_training_report(output_dir: str | Path, summary: dict) -> tuple[Path, Path]:
    """training_summary.json (everything) and training_report.md (for people)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / SUMMARY_FILE, output_dir / REPORT_FILE
    json_path.write_text(json.dumps(summary, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    m, data = summary.get("metrics", {}), summary.get("data", {})
    counts = data.get("counts", {})
    lines = [
        "# Training run",
        "",
        f"Status: **{summary.get('status')}**. Base model: `{summary.get('base_model')}`. "
        f"Data snapshot `{data.get('snapshot_hash')}`.",
        "",
        "## Results",
        "",
        "```",
        metrics_table(m),
        "```",
        "",
        "Per-clip comparison: [eval.md](eval.md). Curves: ![curves](curves.png)",
        "",
        "## Data",
        "",
        f"train {counts.get('train', 0)}, validation {counts.get('validation', 0)}, test {counts.get('test', 0)}, "
        f"excluded {len(data.get('excluded', []))}; training items after augmentation: {data.get('train_items')}.",
        "",
    ]
    if data.get("excluded"):
        lines += ["| Clip | Why it was left out |", "|---|---|"]
        lines += [f"| {e['id']} | {html.escape(e['reason'], quote=False).replace('|', '/')} |" for e in data["excluded"]]
        lines.append("")
    lines += ["## Timings", ""]
    lines += [f"- {k}: {v:.1f} s" for k, v in summary.get("timings", {}).items()]
    lines += ["", "## Configuration", "", "```json", json.dumps(summary.get("config", {}), indent=2), "```", ""]
    lines += ["## Versions", "", f"git revision: `{summary.get('git_revision')}`", ""]
    lines += [f"- {k} {v}" for k, v in summary.get("versions", {}).items()]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return json_path, md_path
