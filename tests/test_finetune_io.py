"""Saving, loading, hostile model files, and resuming a killed run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from tlkit import DatasetSplitter, FineTuner, Split, schedules
from tlkit.backbones import get_backbone
from tlkit.datasets import make_synthetic_dataset
from tlkit.errors import ModelFileError

SIZE = 32


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = make_synthetic_dataset(
        tmp_path_factory.mktemp("io") / "photos", {"a": 16, "b": 12, "c": 10}, image_size=SIZE
    )
    s = DatasetSplitter(val=0.2, test=0.2, seed=0, progress=False).split(root)
    return Split.load(s.save(root.parent / "split.json"))


@pytest.fixture(scope="module")
def saved(split: Split, tmp_path_factory: pytest.TempPathFactory) -> tuple[FineTuner, Path]:
    bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8, 16))
    t = FineTuner(bb, schedule=schedules.FreezeThenUnfreeze(1, 1, unfreeze=1), seed=0, verbose=0)
    t.fit(split.train, split.val)
    return t, t.save(tmp_path_factory.mktemp("model") / "tiny.keras")


def test_round_trip_predicts_identically(split: Split, saved: tuple[FineTuner, Path]) -> None:
    tuner, path = saved
    loaded = FineTuner.load(path)
    np.testing.assert_array_equal(
        loaded.predict(split.test).probabilities, tuner.predict(split.test).probabilities
    )
    assert loaded.class_names == list(split.class_names)
    assert loaded.backbone_name == "scratch_cnn"
    assert loaded.image_size == (SIZE, SIZE)
    assert loaded.schedule == tuner.schedule
    assert loaded.progress == {"phases_done": 2, "epochs_done": 2}
    assert loaded.history.phases == ["head", "finetune"]
    assert loaded.train_time_s == pytest.approx(tuner.train_time_s)


def test_head_units_round_trip(tmp_path: Path) -> None:
    """The hidden layer of the head is saved as ``head_units`` and rebuilt on load."""
    bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8,))
    t = FineTuner(bb, class_names=["a", "b"], head_units=4, seed=0, verbose=0)
    path = t.save(tmp_path / "hidden.keras")
    meta = json.loads(zipfile.ZipFile(path).read("tlkit.json"))
    assert meta["head_units"] == 4 and "head" not in meta
    loaded = FineTuner.load(path)
    assert loaded.head_units == 4
    assert loaded.model.get_layer("head_hidden").units == 4


def test_loaded_model_trains_on(split: Split, saved: tuple[FineTuner, Path]) -> None:
    _, path = saved
    loaded = FineTuner.load(path)
    before = loaded.predict(split.test).probabilities
    loaded.fit(split.train)  # rebuilt with its layer groups, weights kept
    assert loaded.model.output_shape == (None, 3)
    assert not np.array_equal(loaded.predict(split.test).probabilities, before)


def test_keras_ignores_the_tlkit_entry(saved: tuple[FineTuner, Path]) -> None:
    # Pins the Keras behaviour tlkit's metadata relies on: unknown zip entries are ignored.
    _, path = saved
    assert "tlkit.json" in zipfile.ZipFile(path).namelist()
    model = keras.saving.load_model(path, compile=False)
    assert model.output_shape == (None, 3)


def test_save_needs_keras_suffix(saved: tuple[FineTuner, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"\.keras"):
        saved[0].save(tmp_path / "model.h5")


HOSTILE = textwrap.dedent(
    """
    import json, sys, zipfile
    from pathlib import Path
    import keras
    from tlkit import FineTuner
    from tlkit.errors import ModelFileError

    good, work = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads(zipfile.ZipFile(good).read("tlkit.json"))

    def rezip(name, meta_text=None, drop=(), extra=None):
        out = work / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.infolist():
                if item.filename in drop or item.filename == "tlkit.json":
                    continue
                dst.writestr(item, src.read(item))
            if meta_text is not None:
                dst.writestr("tlkit.json", meta_text)
            for k, v in (extra or {}).items():
                dst.writestr(k, v)
        return out

    cases = {}
    cases["missing"] = work / "nope.keras"
    (work / "random.keras").write_bytes(bytes(range(256)) * 40); cases["random"] = work / "random.keras"
    data = good.read_bytes(); (work / "trunc.keras").write_bytes(data[: len(data) // 2])
    cases["truncated"] = work / "trunc.keras"
    cases["no_metadata"] = rezip("nometa.keras")
    cases["bad_json"] = rezip("badjson.keras", "{not json")
    for field, value in [("class_names", "abc"), ("class_names", [1, 2]), ("image_size", [-1, 5]),
                         ("format", "pickle"), ("version", 99), ("backbone", ["x"])]:
        m = dict(meta); m[field] = value
        cases[f"meta_{field}_{value!r}"] = rezip(f"m{len(cases)}.keras", json.dumps(m))
    m = dict(meta); m["schedule"] = {"class_name": "os.system", "config": {"command": "echo"}}
    cases["schedule_global"] = rezip("sched.keras", json.dumps(m))
    m = dict(meta); m["class_names"] = ["a", "b"]
    cases["outputs_mismatch"] = rezip("mismatch.keras", json.dumps(m))
    m = dict(meta); m["history"] = {"history": {"loss": [1.0]}, "phases": []}
    cases["history_lengths"] = rezip("hist.keras", json.dumps(m))
    cases["no_weights"] = rezip("noweights.keras", json.dumps(meta), drop=("model.weights.h5",))
    cases["huge_metadata"] = rezip("huge.keras", json.dumps({**meta, "pad": "x" * (9 << 20)}))
    # A model whose config asks Keras to run code (a Lambda): safe mode must refuse it.
    inp = keras.Input((4, 4, 3))
    lam = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))
    lam_path = work / "lambda_raw.keras"; lam.save(lam_path)
    with zipfile.ZipFile(lam_path, "a") as z:
        z.writestr("tlkit.json", json.dumps({**meta, "image_size": [4, 4]}))
    cases["lambda_layer"] = lam_path

    out = {}
    for name, path in cases.items():
        try:
            FineTuner.load(path)
            out[name] = "loaded"
        except ModelFileError as exc:
            out[name] = "ModelFileError: " + str(exc)
        except Exception as exc:
            out[name] = f"OTHER {type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def test_hostile_and_corrupt_files_raise_model_file_error(
    saved: tuple[FineTuner, Path], tmp_path: Path
) -> None:
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    proc = subprocess.run(
        [sys.executable, str(script), str(saved[1]), str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) >= 16
    for name, outcome in results.items():
        assert outcome.startswith("ModelFileError"), (name, outcome)
        assert "keras" in outcome, (name, outcome)  # every message names the file
    assert "not found" in results["missing"]
    assert "not a .keras model file" in results["truncated"]
    assert "without tlkit metadata" in results["no_metadata"]
    assert "unknown schedule" in results["schedule_global"]
    assert "Keras cannot load" in results["lambda_layer"]
    assert "too large" in results["huge_metadata"]


RESUME = textwrap.dedent(
    """
    import json, os, signal, sys
    import keras
    from tlkit import FineTuner, Split, schedules
    from tlkit.backbones import get_backbone

    split, resume, kill_at, log = Split.load(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with open(log, "a") as f:
                f.write(f"{epoch}\\n")

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    bb = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(8, 16))
    t = FineTuner(bb, schedule=schedules.FreezeThenUnfreeze(2, 3, unfreeze=1), seed=0,
                  verbose=0, resume_dir=resume)
    t.fit(split.train, split.val, callbacks=[Kill()])
    print(json.dumps({"phases": t.history.phases, "progress": t.progress}))
    """
)


@pytest.mark.slow
def test_killed_run_resumes_in_the_right_phase(split: Split, tmp_path: Path) -> None:
    script = tmp_path / "resume.py"
    script.write_text(RESUME)
    manifest = split.train.root.parent / "split.json"
    resume, log = tmp_path / "ckpt", tmp_path / "epochs.log"

    def run(kill_at: int) -> subprocess.CompletedProcess:
        args = [sys.executable, str(script), str(manifest), str(resume), str(kill_at), str(log)]
        return subprocess.run(args, capture_output=True, text=True, timeout=300)

    first = run(kill_at=3)  # killed after the first epoch of the finetune phase
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert log.read_text().split() == ["0", "1", "2"]
    state = json.loads((resume / "state.json").read_text())
    assert (state["phase_index"], state["epochs_in_phase"]) == (1, 1)
    log.unlink()
    second = run(kill_at=0)
    assert second.returncode == 0, second.stderr[-2000:]
    assert log.read_text().split() == ["3", "4"]  # only the remaining epochs
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["phases"] == ["head", "head", "finetune", "finetune", "finetune"]
    assert result["progress"] == {"phases_done": 2, "epochs_done": 5}
    assert len(list(resume.glob("weights-*.weights.h5"))) == 1  # old checkpoints removed


def test_resume_dir_of_another_run_is_refused(split: Split, tmp_path: Path) -> None:
    from tlkit.errors import ScheduleError

    def make(epochs: int) -> FineTuner:
        bb = get_backbone("scratch_cnn", weights=None, image_size=SIZE, widths=(8,))
        return FineTuner(
            bb, schedule=schedules.Frozen(epochs), seed=0, verbose=0, resume_dir=tmp_path / "c"
        )

    make(1).fit(split.train)
    with pytest.raises(ScheduleError, match="another schedule"):
        make(2).fit(split.train)
    (tmp_path / "c" / "state.json").write_text("{broken")
    with pytest.raises(ScheduleError, match="not a tlkit checkpoint"):
        make(1).fit(split.train)
