"""Hostile files in a dataset or given to ``tlkit predict`` (issue 18, findings 4, 5 and 12).

Everything is generated here. Cases that could hang or allocate gigabytes run in a
child process with a timeout and an address-space cap (``RLIMIT_AS``): a hang or a
blow-up fails the test instead of taking pytest down.

- Finding 4: a named pipe (FIFO) and a symlink to ``/dev/zero`` in a class folder
  hung ``tlkit split`` and ``tlkit predict`` (``open().read()``); they are skipped
  with a reason, never opened.
- Finding 5: a 200-frame 1000x1000 GIF (TensorFlow decoded every frame), a
  4000x4000 PNG, and a 1x10000 PNG with ``resize="crop"`` (resized to
  224x2,240,000 before cropping): bounded memory, or a clear error naming the limit.
- Finding 12: a symlinked class folder leading to another class was reported as
  "class has 0 images"; the error now names the symlink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tree, write_image
from PIL import Image

from tlkit._files import (
    MAX_IMAGE_PIXELS,
    check_file,
    file_problem,
    image_problem,
    limit,
    open_image,
    read_file,
)
from tlkit.data._scan import list_class_tree
from tlkit.errors import DatasetError, FileLimitError, InvalidArgumentError

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")

#: Resident memory a hostile image may add over a small one. main took 0.6 to 6 GB
#: more for the hostile images; tlkit now takes < 0.35 GB. Measured per case as the
#: child's peak resident set (``VmHWM``, reset before each case) over its RSS before.
EXTRA_BYTES = 512 << 20
#: Address space the child may map above its peak after the warm-up. This cap only
#: stops a runaway allocation from taking pytest (or the machine) down; it is wider
#: than ``EXTRA_BYTES`` because address space also counts thread stacks and malloc
#: arenas that TensorFlow reserves lazily (a 512 MiB cap made ``pthread_create``
#: fail on some runs). The bound the tests assert is ``EXTRA_BYTES`` of RSS.
CAP_ROOM = 3 << 30
TIMEOUT = 240


def _child(code: str, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object per line."""
    full_env = {
        **os.environ,
        "TLKIT_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MALLOC_ARENA_MAX": "2",  # fewer lazily reserved arenas under the address-space cap
        **(env or {}),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=full_env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child hung for {TIMEOUT} s (stderr: {str(exc.stderr)[-1500:]})")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows, f"child exited {proc.returncode} without a result: {proc.stderr[-3000:]}"
    return rows


_CAP = """
import resource
def cap_memory(extra):
    status = open("/proc/self/status").read()
    peak = int(status.split("VmPeak:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (peak + extra, peak + extra))
    return peak
def _status(field):
    status = open("/proc/self/status").read()
    return int(status.split(field + ":")[1].split()[0]) * 1024
def start_rss_peak():
    # Linux: writing 5 resets VmHWM (the peak resident set) to the current RSS.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")
def rss_growth(start):
    return _status("VmHWM") - start
"""


def _hostile_tree(root: Path) -> Path:
    make_tree(root, {"a": 6, "b": 6})
    os.mkfifo(root / "a" / "pipe.png")
    (root / "b" / "zero.png").symlink_to("/dev/zero")
    return root


# -- the file gate -------------------------------------------------------------------------


def test_gate_refuses_pipes_devices_and_broken_links_without_opening(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "gone").symlink_to(tmp_path / "nothing")
    assert file_problem(tmp_path / "pipe") == "not a regular file: a named pipe (FIFO)"
    assert file_problem(tmp_path / "zero") == "not a regular file: a symlink to a character device"
    assert file_problem(tmp_path).startswith("not a regular file: a folder")
    assert "broken symlink" in str(file_problem(tmp_path / "gone"))
    for name in ("pipe", "zero"):
        with pytest.raises(FileLimitError, match="not a regular file") as info:
            read_file(tmp_path / name)  # would block (pipe) or never end (zero) if opened
        assert info.value.path == str(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        check_file(tmp_path / "missing.png")


def test_gate_follows_a_symlink_to_a_regular_file_and_caps_the_size(tmp_path: Path) -> None:
    write_image(tmp_path / "real.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    data = (tmp_path / "real.png").read_bytes()
    assert read_file(tmp_path / "link.png") == data
    with pytest.raises(FileLimitError, match="MAX_FILE_BYTES"):
        read_file(tmp_path / "link.png", max_bytes=len(data) - 1)


def test_limits_are_overridable_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limit("MAX_IMAGE_PIXELS") == MAX_IMAGE_PIXELS
    assert image_problem(4000, 4000, "PNG") is None
    monkeypatch.setenv("TLKIT_MAX_IMAGE_PIXELS", "10000000")
    assert "over the limit of 10,000,000" in str(image_problem(4000, 4000, "PNG"))
    # JPEGs count at the 1/8 scale tlkit decodes them at
    assert image_problem(8000, 6000, "JPEG") is None
    assert "aspect ratio 10,000.0:1" in str(image_problem(1, 10000, "PNG", "crop"))
    assert image_problem(1, 10000, "PNG", "pad") is None
    monkeypatch.setenv("TLKIT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InvalidArgumentError, match="TLKIT_MAX_IMAGE_PIXELS"):
        limit("MAX_IMAGE_PIXELS")


def test_open_image_checks_pixels_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    monkeypatch.setenv("TLKIT_MAX_IMAGE_PIXELS", "50000")
    with pytest.raises(FileLimitError, match=r"300x200 = 60,000 pixels"):
        open_image(tmp_path / "big.png")


def _first_shape(ds) -> list[int]:
    from tlkit.data import decode_errors

    with decode_errors():
        return next(iter(ds))[0].shape.as_list()


def test_a_pipeline_reads_the_limits_when_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoding function is traced once for its settings and kept (tracing costs about a
    second a pipeline); the limits are among its settings, so a limit changed between two
    pipelines applies to the second while the first keeps its own."""
    from tlkit import Sample
    from tlkit.data import to_dataset
    from tlkit.errors import ImageDecodeError

    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")

    def pipeline():
        return to_dataset([Sample("big.png", 0)], image_size=31, batch_size=1, root=tmp_path)

    plain = pipeline()
    assert _first_shape(plain) == [1, 31, 31, 3]
    monkeypatch.setenv("TLKIT_MAX_IMAGE_PIXELS", "50000")
    capped = pipeline()
    with pytest.raises(ImageDecodeError, match=r"big\.png.*MAX_IMAGE_PIXELS"):
        _first_shape(capped)
    assert _first_shape(plain) == [1, 31, 31, 3]  # built under the default limit
    monkeypatch.delenv("TLKIT_MAX_IMAGE_PIXELS")
    assert _first_shape(pipeline()) == [1, 31, 31, 3]


def test_pipelines_of_the_same_settings_trace_the_decoder_once(tmp_path: Path) -> None:
    from tlkit import Sample
    from tlkit.data import to_dataset
    from tlkit.data._decode import _decoder

    write_image(tmp_path / "a.png", (40, 30))
    for _ in range(3):
        ds = to_dataset([Sample("a.png", 0)], image_size=29, batch_size=1, root=tmp_path)
        assert _first_shape(ds) == [1, 29, 29, 3]
    limits = (int(limit("MAX_IMAGE_PIXELS")), float(limit("MAX_CROP_ASPECT_RATIO")))
    decoder = _decoder((29, 29), "stretch", limits)  # the key decode_stage used
    assert decoder.experimental_get_tracing_count() == 1


# -- finding 4: split, predict and the pipeline skip or refuse, never hang ----------------------


def test_split_skips_a_fifo_and_a_dev_zero_symlink_with_the_reason(tmp_path: Path) -> None:
    root = _hostile_tree(tmp_path / "photos")
    code = _CAP + (
        "import json, sys\n"
        "cap_memory(1 << 30)\n"
        "from tlkit.cli import main\n"
        "rc = main(['split', sys.argv[1], '-o', sys.argv[2], '--show-skipped'])\n"
        "print(json.dumps({'rc': rc}))\n"
    )
    out = tmp_path / "split.json"
    proc_rows = _child(code, str(root), str(out))
    assert proc_rows[-1]["rc"] == 0
    skipped = {s["path"]: s["reason"] for s in json.loads(out.read_text())["skipped"]}
    assert skipped["a/pipe.png"] == "not a regular file: a named pipe (FIFO)"
    assert skipped["b/zero.png"] == "not a regular file: a symlink to a character device"


def test_to_dataset_refuses_a_fifo_by_name_without_opening_it(tmp_path: Path) -> None:
    root = _hostile_tree(tmp_path / "photos")
    code = _CAP + (
        "import json, sys\n"
        "from tlkit import Sample\n"
        "import tensorflow\n"
        "from tlkit.data import to_dataset\n"
        "cap_memory(1 << 30)\n"
        "for name, check in (('a/pipe.png', True), ('b/zero.png', False)):\n"
        "    try:\n"
        "        ds = to_dataset([Sample(name, 0)], image_size=8, root=sys.argv[1],\n"
        "                        check_files=check)\n"
        "        list(ds)\n"
        "        print(json.dumps({'name': name, 'error': None}))\n"
        "    except Exception as exc:\n"
        "        print(json.dumps({'name': name, 'type': type(exc).__name__, 'error': str(exc)}))\n"
    )
    rows = _child(code, str(root))
    assert [r["name"] for r in rows] == ["a/pipe.png", "b/zero.png"]
    for row in rows:
        assert row["type"] == "ImageDecodeError" and "not a regular file" in row["error"]
        assert row["name"] in row["error"]


# -- finding 12: a symlinked class folder ---------------------------------------------------


def test_symlinked_class_folder_into_another_class_names_the_symlink(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "photos", {"a": 3, "b": 3})
    (root / "c").symlink_to(root / "b", target_is_directory=True)
    with pytest.raises(DatasetError, match=r"class folder 'c' .* symlink .* class folder 'b'"):
        list_class_tree(root)


def test_symlinked_class_folder_elsewhere_is_followed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "photos", {"a": 3})
    elsewhere = make_tree(tmp_path / "other", {"b": 2}, start=10) / "b"
    (root / "b").symlink_to(elsewhere, target_is_directory=True)
    (root / "gone").symlink_to(tmp_path / "nothing", target_is_directory=True)
    classes, files, skipped = list_class_tree(root)
    assert classes == ["a", "b"] and sum(c == "b" for _, c in files) == 2
    assert [(s.path, s.reason) for s in skipped] == [
        ("gone", "broken symlink (its target does not exist)")
    ]


def test_audit_of_a_tree_with_a_symlinked_class_gives_the_real_cause(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "photos", {"a": 6, "b": 6})
    (root / "c").symlink_to(root / "b", target_is_directory=True)
    code = (
        "import json, sys, io, contextlib\n"
        "from tlkit.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        "    rc = main(['audit', sys.argv[1], '-o', sys.argv[2], '--no-label-issues',\n"
        "               '--no-near-duplicates'])\n"
        "print(json.dumps({'rc': rc, 'stderr': err.getvalue()}))\n"
    )
    row = _child(code, str(root), str(tmp_path / "audit"))[-1]
    assert row["rc"] == 1
    assert "0 image" not in row["stderr"]
    assert "class folder 'c'" in row["stderr"] and "symlink" in row["stderr"]


# -- predict: finding 4 and 5 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch CNN of a few hundred weights, trained one epoch on 12 images."""
    from tlkit import DatasetSplitter, FineTuner, schedules
    from tlkit.backbones import get_backbone
    from tlkit.datasets import make_synthetic_dataset

    tmp = tmp_path_factory.mktemp("model")
    root = make_synthetic_dataset(tmp / "photos", {"a": 6, "b": 6}, image_size=32)
    split = DatasetSplitter(val=0.25, test=0.25, seed=0, progress=False).split(root)
    backbone = get_backbone("scratch_cnn", weights=None, image_size=32, widths=(4,))
    tuner = FineTuner(
        backbone, schedule=schedules.FreezeThenUnfreeze(1, 0, unfreeze=1), seed=0, verbose=0
    )
    tuner.fit(split.train, split.val)
    return tuner.save(tmp / "tiny.keras")


@pytest.fixture(scope="module")
def big_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small files that decode to a lot: 369 KB-style GIF, 4000x4000 PNG, 1x10000 PNG."""
    d = tmp_path_factory.mktemp("big")
    frame = Image.new("P", (1000, 1000), 0)
    frame.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    frames = []
    for i in range(200):  # distinct frames, so no encoder merges them
        f = frame.copy()
        f.putpixel((i, i), 1)
        frames.append(f)
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=10)
    with Image.open(d / "anim.gif") as im:
        assert im.n_frames == 200 and im.size == (1000, 1000)
    Image.new("RGB", (4000, 4000), (10, 20, 30)).save(d / "big.png")
    Image.new("RGB", (1, 10000), (10, 20, 30)).save(d / "thin.png")
    write_image(d / "small.png", size=(32, 32))
    assert max(os.path.getsize(d / n) for n in ("anim.gif", "big.png", "thin.png")) < 400_000
    return d


_PREDICT = (
    _CAP
    + """
import contextlib, io, json, os, sys
from tlkit.cli import main
model, folder = sys.argv[1], sys.argv[2]

def predict(*files):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["predict", model, *[os.path.join(folder, f) for f in files], "--format", "json"])
    return rc, out.getvalue(), err.getvalue()

predict("small.png")  # warm-up: TensorFlow, the model, the pipeline
cap_memory(int(sys.argv[3]))
for spec in sys.argv[4:]:
    name, _, pixels = spec.partition("@")
    if pixels:
        os.environ["TLKIT_MAX_IMAGE_PIXELS"] = pixels
    else:
        os.environ.pop("TLKIT_MAX_IMAGE_PIXELS", None)
    base = start_rss_peak()
    try:
        rc, out, err = predict(name)
        row = json.loads(out)[0] if out.strip() else {}
        result = {"spec": spec, "rc": rc, "row": row, "stderr": err[-2000:]}
    except BaseException as exc:
        result = {"spec": spec, "rc": None, "row": {}, "stderr": repr(exc)[:2000]}
    print(json.dumps({**result, "grown": rss_growth(base)}))
    sys.stdout.flush()
"""
)


def test_predict_reports_a_fifo_and_a_dev_zero_symlink_and_predicts_the_rest(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "good.png", size=(32, 32))
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    code = _CAP + (
        "import contextlib, io, json, sys\n"
        "import keras, tensorflow\n"
        "from tlkit.cli import main\n"
        "cap_memory(1 << 30)\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    rc = main(['predict', sys.argv[1], sys.argv[2], '--format', 'json'])\n"
        "print(json.dumps({'rc': rc, 'rows': json.loads(out.getvalue()), 'err': err.getvalue()}))\n"
    )
    result = _child(code, str(tiny_model), str(folder))[-1]
    assert result["rc"] == 1, result["err"]
    rows = {Path(r["path"]).name: r for r in result["rows"]}
    assert rows["good.png"]["label"] in ("a", "b") and rows["good.png"]["error"] is None
    assert rows["pipe.png"]["error"] == "not a regular file: a named pipe (FIFO)"
    assert rows["zero.png"]["error"] == "not a regular file: a symlink to a character device"
    assert "2 of 3 file(s) could not be read" in result["err"]


@pytest.mark.slow
def test_predict_decodes_big_images_in_bounded_memory(tiny_model: Path, big_images: Path) -> None:
    specs = ["anim.gif", "big.png", "thin.png", "big.png@10000000", "anim.gif@500000"]
    rows = _child(_PREDICT, str(tiny_model), str(big_images), str(CAP_ROOM), *specs)
    got = {r["spec"]: r for r in rows}
    assert list(got) == specs
    assert max(r["grown"] for r in rows) < EXTRA_BYTES, [(r["spec"], r["grown"]) for r in rows]
    for spec in ("anim.gif", "big.png", "thin.png"):
        assert got[spec]["rc"] == 0, (spec, got[spec]["stderr"])
        assert got[spec]["row"]["label"] in ("a", "b"), got[spec]
    for spec, size in (("big.png@10000000", "4000x4000"), ("anim.gif@500000", "1000x1000")):
        assert got[spec]["rc"] == 1, (spec, got[spec]["stderr"])
        error = got[spec]["row"]["error"]
        assert error.startswith(f"image too large: {size}") and "MAX_IMAGE_PIXELS" in error


_PIPELINE = (
    _CAP
    + """
import json, os, sys
from tlkit import Sample
from tlkit.data import decode_errors, to_dataset
folder = sys.argv[1]

def run(name, resize):
    ds = to_dataset([Sample(name, 0)], image_size=224, batch_size=1, root=folder, resize=resize)
    with decode_errors():
        images, _ = next(iter(ds))
    return images.shape.as_list()

run("small.png", "crop")  # warm-up
cap_memory(int(sys.argv[2]))
for spec in sys.argv[3:]:
    name, resize, pixels = (spec.split(":") + [""])[:3]
    if pixels:
        os.environ["TLKIT_MAX_IMAGE_PIXELS"] = pixels
    else:
        os.environ.pop("TLKIT_MAX_IMAGE_PIXELS", None)
    base = start_rss_peak()
    try:
        result = {"spec": spec, "shape": run(name, resize)}
    except BaseException as exc:
        result = {"spec": spec, "type": type(exc).__name__, "error": str(exc)[:2000]}
    print(json.dumps({**result, "grown": rss_growth(base)}))
    sys.stdout.flush()
"""
)


@pytest.mark.slow
def test_pipeline_decodes_big_images_in_bounded_memory_or_names_the_limit(
    big_images: Path,
) -> None:
    specs = [
        "anim.gif:stretch",
        "big.png:stretch",
        "big.png:crop",
        "thin.png:pad",
        "thin.png:crop",
        "big.png:stretch:10000000",
        "anim.gif:crop:500000",
    ]
    rows = _child(_PIPELINE, str(big_images), str(CAP_ROOM), *specs)
    got = {r["spec"]: r for r in rows}
    assert list(got) == specs
    assert max(r["grown"] for r in rows) < EXTRA_BYTES, [(r["spec"], r["grown"]) for r in rows]
    for spec in specs[:4]:
        assert got[spec].get("shape") == [1, 224, 224, 3], got[spec]
    thin = got["thin.png:crop"]
    assert thin["type"] == "ImageDecodeError", thin
    assert "thin.png" in thin["error"] and "aspect ratio over the limit of 50:1" in thin["error"]
    for spec in specs[5:]:
        row = got[spec]
        assert row["type"] == "ImageDecodeError", row
        assert spec.split(":")[0] in row["error"] and "MAX_IMAGE_PIXELS" in row["error"]
