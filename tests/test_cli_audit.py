"""``tlkit audit``: the command, and hostile files read by the audit (in a subprocess)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

from tlkit.cli import main
from tlkit.datasets import make_synthetic_dataset


def _bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_audit_command_on_a_manifest(tmp_path: Path, capsys) -> None:
    root = make_synthetic_dataset(tmp_path / "d", {"a": 15, "b": 15}, image_size=32, seed=0)
    first = sorted((root / "a").iterdir())[0]
    (root / "b" / "copy.png").write_bytes(first.read_bytes())  # identical, other class
    assert (
        main(["split", str(root), "--on-conflict", "keep_first", "-o", str(tmp_path / "s.json")])
        == 0
    )
    capsys.readouterr()
    code = main(
        [
            "audit",
            str(tmp_path / "s.json"),
            "-o",
            str(tmp_path / "out"),
            "--no-label-issues",
            "--no-feature-duplicates",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "identical files under several classes: 1" in captured.out
    assert "report written to" in captured.err  # progress on stderr, results on stdout
    assert (tmp_path / "out" / "audit.html").is_file()
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert data["settings"]["hash_threshold"] == 40
    assert data["settings"]["duplicate_methods"] == ["identical", "phash"]
    assert data["settings"]["feature_duplicates"] is False and data["notes"] == []
    assert "features not compared (feature_duplicates=False)" in captured.out
    assert data["label_issues"] == []


def test_audit_command_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["audit", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tlkit audit: error:") and "does not exist" in err


def test_files_swapped_after_the_split_never_crash_the_audit(tmp_path: Path) -> None:
    """Garbage, a truncated file and a decompression bomb, read by a fresh interpreter."""
    root = make_synthetic_dataset(tmp_path / "d", {"a": 12, "b": 12}, image_size=32, seed=2)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        import numpy as np
        from tlkit import DatasetSplitter
        from tlkit.audit import audit
        root = Path({str(root)!r})
        split = DatasetSplitter(seed=0).split(root)
        files = [p for part in split.parts.values() for p in part.paths]
        Path(files[0]).write_bytes(b"not an image at all")
        Path(files[1]).write_bytes(Path(files[1]).read_bytes()[:40])
        Path(files[2]).write_bytes({_bomb_png()!r})
        feats = lambda x: x.reshape(len(x), -1)[:, ::97].astype(float)
        r = audit(split, features=feats, image_size=32, feature_duplicates=True, cv_folds=2)
        r.save(Path({str(tmp_path / "out")!r}))
        print("NOTES", r.notes)
        print("UNREADABLE", len(r.unreadable), all(":" in why for _, why in r.unreadable))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 image(s) could not be decoded for features" in proc.stdout
    assert "3 image(s) could not be decoded for hashing" in proc.stdout
    assert "UNREADABLE 3 True" in proc.stdout  # each swapped file listed with its reason
    assert (tmp_path / "out" / "audit.html").read_text().rstrip().endswith("</html>")
