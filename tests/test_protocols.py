"""tlkit.protocols: the contracts hold at run time and for a static type checker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from tlkit.protocols import Augmenter, TrainedClassifier


@dataclass
class _Run:
    model: object
    class_names: list[str]
    history: dict[str, list[float]]
    train_time_s: float
    tflite_path: str | None = None


def test_runtime_check_needs_every_member():
    assert isinstance(_Run(None, ["a", "b"], {}, 1.0), TrainedClassifier)

    class OnlyModel:
        model = None

    assert not isinstance(OnlyModel(), TrainedClassifier)


def test_finetuner_and_pipeline_implement_them():
    from tlkit.augment import AugmentationPipeline
    from tlkit.finetune import FineTuner

    assert isinstance(FineTuner.scratch_cnn(class_names=["a", "b"]), TrainedClassifier)
    assert isinstance(AugmentationPipeline.preset("light", seed=0), Augmenter)
    assert not isinstance(object(), Augmenter)


def test_type_checker_accepts_finetuner_and_refuses_a_partial_object(tmp_path):
    """mypy sees tlkit's lazy names, FineTuner and a dataclass fit the protocol, a partial object does not."""
    mypy = pytest.importorskip("mypy.api")
    src = tmp_path / "use_protocol.py"
    src.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from tlkit import AugmentationPipeline, FineTuner  # the lazy names, as users write them
            from tlkit.protocols import Augmenter, TrainedClassifier


            def compare(t: TrainedClassifier) -> None: ...
            def augment(a: Augmenter) -> None: ...


            @dataclass
            class Run:
                model: object
                class_names: list[str]
                history: dict[str, list[float]]
                train_time_s: float
                tflite_path: str | None


            class Partial:
                model = None


            compare(FineTuner.scratch_cnn(class_names=["a", "b"]))
            compare(Run(None, ["a"], {}, 1.0, None))
            augment(AugmentationPipeline.preset("light"))
            compare(Partial())  # the one error expected
            reveal_type(FineTuner.scratch_cnn)
            """
        )
    )
    out, err, status = mypy.run(
        [
            "--ignore-missing-imports",
            "--follow-imports=silent",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(src),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    assert "Partial" in errors[0] and "TrainedClassifier" in errors[0]
    assert status == 1
    revealed = [line for line in out.splitlines() if "Revealed type" in line]
    assert revealed and "tlkit.finetune" in revealed[0], out  # not Any from tlkit.__getattr__


def test_lazy_names_are_listed_and_stay_lazy():
    code = "import tlkit, sys; tlkit.__dir__(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # import tlkit stays cheap
    import tlkit

    assert {"FineTuner", "AugmentationPipeline", "ModelComparator", "schedules"} <= set(dir(tlkit))
