"""A run's folder (``OUT/runs/<method>-seed<k>/``): where it is, its record, and what makes a finished run
reusable. Every other module reaches a run folder through these functions.

The record (``record.json``) carries everything the results need, the test predictions included, so the
statistics work from records alone and nothing reads a run folder back by a path convention.

A finished run's record is reused only when its identity (the data's fingerprint and the whole run
configuration) equals the one asked for now; otherwise the rerun is refused with a message naming what
differs, so results made from other data or settings are never mixed into a new results.json.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np


class RunMismatchError(RuntimeError):
    """A run folder holds a run made from other data or settings than the ones asked for."""


class DamagedRunError(RuntimeError):
    """A file of a run folder cannot be read; the message names it and the remedy."""


RUNS_DIR = "runs"  # OUT/runs/ holds one folder per run
RECORD_FILE = "record.json"
LEGACY_PREDICTIONS_FILE = "test_predictions.npy"  # where kdlib before records carried their predictions kept them


def run_dir(out_dir: str | Path, method: str, seed: int) -> Path:
    return Path(out_dir) / RUNS_DIR / f"{method}-seed{seed}"


def record_path(out_dir: str | Path, method: str, seed: int) -> Path:
    return run_dir(out_dir, method, seed) / RECORD_FILE


def is_finished(out_dir: str | Path, method: str, seed: int) -> bool:
    """Whether the run has its record (written last, once trained and tested)."""
    return record_path(out_dir, method, seed).exists()


def write_record(out_dir: str | Path, record: dict) -> Path:
    """The record of the run it names (``record["method"]``, ``record["seed"]``), written atomically."""
    from .fileio import atomic_write_json

    return atomic_write_json(record, record_path(out_dir, record["method"], record["seed"]))


def identity(method: str, model: str, model_kwargs: dict, train: dict, objective: dict, data_fingerprint: str,
             **extra) -> dict:
    """What defines a run's result: the method, the model, every training setting (less those that cannot
    change the result), the objective's settings and the data's fingerprint."""
    from .checkpoint import RESUME_FREE_FIELDS

    return {"method": method, "model": model, "model_kwargs": dict(model_kwargs),
            "train": {k: v for k, v in train.items() if k not in RESUME_FREE_FIELDS},
            "objective": dict(objective), "data_fingerprint": data_fingerprint, **extra}


def _flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def differences(saved: dict, wanted: dict) -> dict:
    """{setting: (saved, wanted)} for every setting that differs (nested settings as 'train.lr')."""
    a, b = _flatten(json.loads(json.dumps(saved))), _flatten(json.loads(json.dumps(wanted)))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def describe_differences(changed: dict) -> str:
    def short(v):
        return f"{v[:12]}..." if isinstance(v, str) and len(v) == 64 else v  # fingerprints

    parts = []
    for k, (old, new) in changed.items():
        name = "data (fingerprint)" if k == "data_fingerprint" else k
        parts.append(f"{name}: {short(old)!r} -> {short(new)!r}")
    return ", ".join(parts)


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DamagedRunError(f"{path} cannot be read ({type(exc).__name__}: {exc}). Delete the folder "
                              f"{Path(path).parent} to train that run again.") from exc


def read_record(path: Path, wanted: dict | None) -> dict:
    """The finished run's record, after checking it was made from ``wanted`` (the identity asked for now)."""
    path = Path(path)
    record = read_json(path)
    if not isinstance(record, dict):
        raise DamagedRunError(f"{path} holds a JSON {type(record).__name__}, not a run's record. Delete the folder "
                              f"{path.parent} to train that run again.")
    if wanted is not None:
        saved = record.get("identity")
        if saved is None:
            raise RunMismatchError(f"{path.parent} holds a run made by an older kdlib, which did not record its data "
                                   "and settings, so it cannot be checked against this run's. Use another OUT_DIR, or "
                                   "delete that folder to train it again.")
        changed = differences(saved, wanted)
        if changed:
            raise RunMismatchError(f"{path.parent} holds a finished run made with other data or settings "
                                   f"({describe_differences(changed)}; saved -> now). Use another OUT_DIR for this "
                                   "run, or delete that folder to train it again.")
    legacy = path.parent / LEGACY_PREDICTIONS_FILE
    if "test_accuracy" in record and "test_predictions" not in record and legacy.exists():
        record["test_predictions"] = _load_array(legacy).tolist()
    check_metrics(record, str(path))
    return record


def metric_disagreements(record: dict) -> list[str]:
    """What in a tested run's record disagrees with its test predictions and labels: the accuracy, the per-class
    accuracy and the confusion matrix, each recomputed from them. A record without labels (an older kdlib) is checked
    against its own confusion matrix, whose columns must count the predictions; one without predictions, not at all."""
    from .evaluate import confusion_matrix, per_class_accuracy

    predictions, labels = record.get("test_predictions"), record.get("test_labels")
    if "test_accuracy" not in record or predictions is None:
        return []
    predictions = np.asarray(predictions)
    stored_cm = None if record.get("confusion_matrix") is None else np.asarray(record["confusion_matrix"])
    num_classes = len(stored_cm) if stored_cm is not None else None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != predictions.shape:
            return [f"{len(labels)} test labels for {len(predictions)} test predictions"]
    if num_classes is None and labels is not None and len(labels):
        num_classes = int(max(labels.max(), predictions.max())) + 1
    if num_classes is None:
        return []
    for name, values in (("test_predictions", predictions), ("test_labels", labels)):
        if values is not None and (len(values) == 0 or not np.issubdtype(values.dtype, np.integer)
                                   or values.min() < 0 or values.max() >= num_classes):
            return [f"{name} are not {len(values) or 'any'} class indices in 0..{num_classes - 1}"]
    problems = []
    if labels is not None:
        cm = confusion_matrix(predictions, labels, num_classes)
        if stored_cm is not None and (stored_cm.shape != cm.shape or not np.array_equal(stored_cm, cm)):
            problems.append("confusion_matrix differs from the one the predictions and labels give")
    elif stored_cm is not None:
        cm = stored_cm
        if not np.array_equal(cm.sum(axis=0), np.bincount(predictions, minlength=num_classes)):
            problems.append("confusion_matrix's columns do not count the test predictions")
    accuracy = float(np.trace(cm) / max(cm.sum(), 1))
    if not isinstance(record["test_accuracy"], (int, float)) or abs(record["test_accuracy"] - accuracy) > 1e-6:
        problems.append(f"test_accuracy is {record['test_accuracy']!r}, the predictions give {accuracy:.6f}")
    if record.get("per_class_accuracy") is not None:
        stored = np.asarray(record["per_class_accuracy"], dtype=float)
        recomputed = per_class_accuracy(cm)
        if stored.shape != recomputed.shape or not np.allclose(stored, recomputed, atol=1e-9, equal_nan=True):
            problems.append("per_class_accuracy differs from what the predictions give")
    return problems


def check_metrics(record: dict, path: str) -> None:
    """``DamagedRunError`` naming the record's file when ``metric_disagreements`` finds any: a result is never
    published from numbers its own predictions contradict."""
    problems = metric_disagreements(record)
    if problems:
        raise DamagedRunError(f"{path} contradicts its own test predictions ({'; '.join(problems)}): it was edited or "
                              f"damaged. Delete the folder {Path(path).parent} to train and test that run again.")


def save_array(array: np.ndarray, path: Path) -> Path:
    """``np.save`` through a temporary file (a kill never leaves half an array)."""
    from .fileio import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, array)
    return atomic_write_bytes(buffer.getvalue(), path)


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        raise DamagedRunError(f"{path} cannot be read ({type(exc).__name__}: {exc}). Delete the folder {path.parent} "
                              "to train and test that run again.") from exc
