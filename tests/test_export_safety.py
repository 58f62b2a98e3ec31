"""export() never deletes what tlkit did not write, writes atomically, and loads only trusted code.

Issue 18, findings 1 and 6: a SavedModel export used to ``rmtree`` whatever was at the output
path (the working folder with ``-o .``), a failed export left a new model beside old labels,
and an exported SavedModel's graph ran on load (``tf.io.write_file`` wrote a file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tlkit.errors import ExportError, UntrustedModelError  # noqa: E402
from tlkit.export import ExportedModel, check_export, export  # noqa: E402

SIZE = 16
IMAGES = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
_TARGET = {"litert": "m.tflite", "onnx": "m.onnx", "saved_model": "sm"}


def _net(seed: int, size: int = SIZE, classes: int = 2) -> keras.Model:
    """A model of a few dozen weights; another ``seed`` gives other weights (other file bytes)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def nets() -> tuple[keras.Model, keras.Model]:
    return _net(0), _net(1)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root``: the bytes of a file, None for a folder (links not followed)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        key = p.relative_to(root).as_posix()
        out[key] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def _export(model: keras.Model, path: Path, fmt: str, **kwargs) -> Path:
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
    return export(model, path, format=fmt, latency_runs=1, **kwargs).path


# -- finding 1: nothing tlkit did not write is replaced -----------------------------------------


def test_saved_model_leaves_a_foreign_folder_alone(nets, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub" / "data.bin").write_bytes(b"\0\1\2")
    before = tree(tmp_path)
    with pytest.raises(ExportError, match=r"project.*not empty.*overwrite=True"):
        export(nets[0], folder, format="saved_model", latency_runs=1)
    assert tree(tmp_path) == before
    with pytest.raises(ExportError, match=r"project.*not a previous tlkit export"):
        export(nets[0], folder, format="saved_model", latency_runs=1, overwrite=True)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fmt", ["saved_model", "litert"])
def test_a_file_at_the_output_path_is_left_alone(nets, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / _TARGET[fmt]
    target.write_bytes(b"someone else's model")
    before = tree(tmp_path)
    with pytest.raises(ExportError, match=re.escape(target.name)):
        export(nets[0], target, format=fmt, latency_runs=1)
    assert tree(tmp_path) == before
    with pytest.raises(ExportError, match=re.escape(target.name)):
        export(nets[0], target, format=fmt, latency_runs=1, overwrite=True)
    assert tree(tmp_path) == before


def test_a_foreign_labels_file_is_left_alone(nets, tmp_path: Path) -> None:
    (tmp_path / "m.labels.txt").write_text("cat\ndog\n")
    before = tree(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(ExportError, match=r"m\.labels\.txt"):
            export(nets[0], tmp_path / "m.tflite", class_names=["a", "b"], overwrite=overwrite)
        assert tree(tmp_path) == before
    # the same class names: nothing would change, so the export goes ahead
    report = export(nets[0], tmp_path / "m.tflite", class_names=["cat", "dog"], latency_runs=1)
    assert report.labels_path.read_text() == "cat\ndog\n"


def test_the_working_folder_is_never_a_saved_model(nets, tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    for path in (".", "..", str(work)):
        for overwrite in (False, True):
            with pytest.raises(ExportError, match="working folder"):
                export(nets[0], path, format="saved_model", latency_runs=1, overwrite=overwrite)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fmt", ["saved_model", "litert", "onnx"])
def test_overwrite_replaces_only_a_previous_tlkit_export(nets, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / _TARGET[fmt]
    _export(nets[0], target, fmt, class_names=["a", "b"])
    first = tree(tmp_path)
    with pytest.raises(ExportError, match="overwrite=True"):
        _export(nets[1], target, fmt, class_names=["c", "d"])
    assert tree(tmp_path) == first
    _export(nets[1], target, fmt, class_names=["c", "d"], overwrite=True)
    second = tree(tmp_path)
    assert second != first and set(second) == set(first)  # replaced, nothing left behind
    assert (tmp_path / f"{target.stem}.labels.txt").read_text() == "c\nd\n"
    # a file the user put in (or changed) since: no longer tlkit's export
    if fmt == "saved_model":
        (target / "README.md").write_text("my notes on this model")
        why = "files tlkit did not write"
    else:
        target.write_bytes(target.read_bytes() + b"\0")
        why = "changed since tlkit wrote it"
    edited = tree(tmp_path)
    with pytest.raises(ExportError, match=why):
        _export(nets[0], target, fmt, class_names=["a", "b"], overwrite=True)
    assert tree(tmp_path) == edited


@pytest.mark.parametrize("fmt", ["saved_model", "litert"])
def test_a_failed_export_leaves_the_previous_one_byte_identical(
    nets, tmp_path: Path, monkeypatch, fmt: str
) -> None:
    target = tmp_path / _TARGET[fmt]
    _export(nets[0], target, fmt, class_names=["a", "b"])
    before = tree(tmp_path)

    def crashing_export(self, filepath, format, **kwargs):  # writes half a file, then fails
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        if format == "tf_saved_model":
            Path(filepath).mkdir(exist_ok=True)
            (Path(filepath) / "saved_model.pb").write_bytes(b"half")
        else:
            Path(filepath).write_bytes(b"half a model")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(keras.Model, "export", crashing_export)
    with pytest.raises(ExportError, match="converter crashed"):
        _export(nets[1], target, fmt, class_names=["c", "d"], overwrite=True)
    assert tree(tmp_path) == before  # model, labels, marker as they were; no temporaries


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_rejected_class_name_leaves_model_and_labels(nets, tmp_path: Path, overwrite) -> None:
    target = tmp_path / "m.tflite"
    export(nets[0], target, class_names=["ok", "crack"], latency_runs=1)
    before = tree(tmp_path)
    kwargs = {"overwrite": True} if overwrite else {}
    with pytest.raises(ExportError, match="line break"):
        export(nets[1], target, class_names=["ok", "cr\nack"], latency_runs=1, **kwargs)
    assert tree(tmp_path) == before


# -- finding 6: loading an exported model runs no foreign code without trust=True --------------


def evil_saved_model(folder: Path, written: Path, size: int = SIZE, classes: int = 2) -> Path:
    """A SavedModel whose serving function writes ``written`` (``tf.io.write_file``)."""
    import tensorflow as tf

    class Evil(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def serve(self, images):
            tf.io.write_file(str(written), "ran")
            scores = tf.reduce_mean(images, axis=[1, 2])[:, :1] * 0.0
            return tf.nn.softmax(scores + tf.range(classes, dtype=tf.float32))

    module = Evil()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def test_a_saved_model_runs_only_when_trusted(nets, tmp_path: Path) -> None:
    written = tmp_path / "written.txt"
    evil = evil_saved_model(tmp_path / "evil", written)
    for load in (
        lambda: ExportedModel(evil),
        lambda: check_export(nets[0], evil, IMAGES, latency_runs=1),
    ):
        with pytest.raises(UntrustedModelError, match=r"trust=True.*--trust-model"):
            load()
        assert not written.exists()
    model = ExportedModel(evil, trust=True)
    assert model.predict(IMAGES).shape == (4, 2)
    assert written.read_text() == "ran"  # what trust=True lets it do


def test_a_litert_file_with_select_tf_ops_needs_trust(tmp_path: Path) -> None:
    import tensorflow as tf

    written = tmp_path / "written.txt"

    class Flex(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
        def serve(self, images):
            tf.io.write_file(str(written), tf.strings.as_string(tf.reduce_sum(images)))
            return tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2])[:, :2])

    module = Flex()
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    path = tmp_path / "flex.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(UntrustedModelError, match=r"FlexWriteFile.*trust=True"):
        ExportedModel(path)
    assert not written.exists()


def test_tlkit_litert_and_onnx_exports_need_no_trust(nets, tmp_path: Path) -> None:
    for fmt in ("litert", "onnx"):
        path = _export(nets[0], tmp_path / _TARGET[fmt], fmt, class_names=["a", "b"])
        assert ExportedModel(path).predict(IMAGES).shape == (4, 2)


def test_an_onnx_file_with_external_data_needs_trust(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    np.full(2, 5.0, np.float32).tofile(tmp_path / "weights.bin")
    w = numpy_helper.from_array(np.zeros(2, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "8")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, SIZE, SIZE, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Slice", ["m", "s", "e", "a"], ["m2"]),
        helper.make_node("Add", ["m2", "w"], ["y"]),
    ]
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "s"),
        numpy_helper.from_array(np.array([2], np.int64), "e"),
        numpy_helper.from_array(np.array([1], np.int64), "a"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [w, *consts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "ext.onnx"
    path.write_bytes(model.SerializeToString())
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].external_data
    with pytest.raises(UntrustedModelError, match=r"external data files \(w\).*trust=True"):
        ExportedModel(path)
    out = ExportedModel(path, trust=True).predict(np.zeros((1, SIZE, SIZE, 3)))
    assert np.allclose(out, 5.0)  # the external weights were read: what trust=True allows


def test_trust_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="trust"):
        ExportedModel(tmp_path / "m.tflite", trust="yes")
    assert os.listdir(tmp_path) == []
