"""tlkit.compare's error contract: one exception family, one name for the seed, the old name deprecated."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tlkit.compare import ModelComparator, bootstrap_ci, holm, mcnemar_exact
from tlkit.compare._stats import bootstrap_indices
from tlkit.errors import ArgumentTypeError, ComparisonError, InvalidArgumentError, TlkitError

Y = [0, 0, 1, 1, 1, 0]
P = [0, 1, 1, 1, 0, 0]


def comparator(**kwargs) -> ModelComparator:
    return ModelComparator(Y, ["a", "b"], **kwargs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: comparator(n_boot=True),
        lambda: comparator(n_boot=2.0),
        lambda: comparator(confidence="0.95"),
        lambda: comparator(alpha=None),
        lambda: comparator(min_support=True),
        lambda: comparator(top_k=1.5),
        lambda: comparator(batch_size="8"),
        lambda: comparator(latency_runs=False),
        lambda: comparator(seed="0"),
        lambda: comparator(seed=1.0),
        lambda: ModelComparator("photos/", ["a", "b"]),
        lambda: bootstrap_ci(Y, P, "accuracy", n_boot=True),
        lambda: bootstrap_ci(Y, P, "accuracy", confidence="high"),
        lambda: bootstrap_ci(Y, P, 3),
        lambda: bootstrap_ci(Y, P, "accuracy", stratified="yes"),
        lambda: bootstrap_indices(Y, True),
        lambda: bootstrap_indices(Y, 5, seed=np.random.default_rng(0)),
        lambda: comparator(n_boot=0).add_predictions(3, P),
        lambda: comparator(n_boot=0).add_predictions("m", P, params=True),
        lambda: comparator(n_boot=0).add_predictions("m", P, train_time_s="1 h"),
        lambda: comparator(n_boot=0).add_predictions("m", P, history=[0.5, 0.4]),
        lambda: comparator(n_boot=0).add("m", object()),
    ],
)
def test_wrong_types_are_argument_type_errors(call) -> None:
    with pytest.raises(ArgumentTypeError) as info:
        call()
    assert isinstance(info.value, TypeError) and isinstance(info.value, TlkitError)


@pytest.mark.parametrize(
    "call",
    [
        lambda: comparator(n_boot=-1),
        lambda: comparator(confidence=1.0),
        lambda: comparator(alpha=0),
        lambda: comparator(correction="bonferroni"),
        lambda: comparator(min_support=-1),
        lambda: comparator(top_k=0),
        lambda: comparator(batch_size=0),
        lambda: ModelComparator(Y),
        lambda: ModelComparator(Y, ["a", "a"]),
        lambda: comparator(n_boot=0).add_predictions("m", P, latency_ms=-1.0),
        lambda: comparator(n_boot=0).add_predictions("m", P, size_bytes=-5),
        lambda: comparator(n_boot=0).add_predictions(" ", P),
        lambda: bootstrap_ci(Y, P, "accuracy", n_boot=-1),
        lambda: bootstrap_ci(Y, P, "auc"),
        lambda: bootstrap_indices(Y, -2),
    ],
)
def test_bad_argument_values_are_invalid_argument_errors(call) -> None:
    """An option out of range is an InvalidArgumentError, as everywhere in tlkit (#21)."""
    with pytest.raises(InvalidArgumentError) as info:
        call()
    assert not isinstance(info.value, ComparisonError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TlkitError)


@pytest.mark.parametrize(
    "call",
    [
        lambda: comparator(n_boot=0).run(),
        lambda: comparator(n_boot=0).add_predictions("m", [0, 1]),
        lambda: comparator(n_boot=0).add_predictions("m", y_prob=[0.5, 2, 0, 0, 0, 0]),
        lambda: comparator(n_boot=0).add_predictions("m", P, history={"loss": ["low"]}),
        lambda: bootstrap_ci(Y, P[:3], "accuracy"),
        lambda: mcnemar_exact(Y, P, P[:2]),
        lambda: holm([[0.1, 0.2]]),
    ],
)
def test_unusable_data_are_comparison_errors(call) -> None:
    with pytest.raises(ComparisonError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TlkitError)


def test_a_bad_seed_is_refused_as_everywhere_in_tlkit() -> None:
    """Seeds go through tlkit._validation.check_seed: the same error as in the splitter."""
    for call in (
        lambda: comparator(seed=-1),
        lambda: bootstrap_indices(Y, 5, seed=-1),
        lambda: bootstrap_ci(Y, P, "accuracy", seed=-1),
    ):
        with pytest.raises(InvalidArgumentError, match="seed must be an int >= 0 or None, got -1"):
            call()


def test_n_boot_true_is_refused_everywhere_with_one_message() -> None:
    messages = set()
    for call in (
        lambda: comparator(n_boot=True),
        lambda: bootstrap_ci(Y, P, "accuracy", n_boot=True),
        lambda: bootstrap_indices(Y, True),
    ):
        with pytest.raises(ArgumentTypeError, match="n_boot must be an int >= 0") as info:
            call()
        messages.add(str(info.value))
    assert messages == {"n_boot must be an int >= 0, got True (bool)"}


def test_bootstrap_indices_checks_before_the_first_resample() -> None:
    """The arguments are checked when it is called, not when the first resample is drawn."""
    with pytest.raises(InvalidArgumentError):
        bootstrap_indices(Y, -1)  # no next() needed


def test_a_missing_tflite_file_is_named() -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    x = np.zeros((6, 4, 4, 3), "float32")
    c = ModelComparator((x, np.array(Y)), ["a", "b"], n_boot=0)
    with pytest.raises(ComparisonError, match=r"tflite_path '.*nowhere\.tflite' of model 'm'"):
        c.add("m", model, tflite_path="nowhere.tflite", measure_cost=False)
    with pytest.raises(ArgumentTypeError, match="measure_cost must be True or False"):
        c.add("m", model, measure_cost="no")


# -- seed (random_state, its old name, is gone) -----------------------------------------------


def test_seed_is_the_name_and_the_report_stores_it() -> None:
    c = comparator(n_boot=30, seed=7)
    assert c.seed == 7 and not hasattr(c, "random_state")
    d = json.loads(c.add_predictions("m", P).run().to_json())
    # Schema 2 stores the seed under "seed" ("random_state" in schema 1).
    assert d["schema"] == "tlkit.comparison/3"
    assert d["settings"]["seed"] == 7 and "random_state" not in d["settings"]


def test_random_state_the_old_name_of_seed_is_refused() -> None:
    with pytest.raises(TypeError, match="random_state"):
        comparator(n_boot=40, random_state=3)
    with pytest.raises(TypeError, match="random_state"):
        bootstrap_ci(Y, P, "accuracy", n_boot=50, random_state=4)
    with pytest.raises(TypeError, match="random_state"):
        list(bootstrap_indices(Y, 3, random_state=4))
    with pytest.raises(TypeError, match="random_state"):
        comparator(random_state=None)


def test_seed_none_means_unseeded() -> None:
    assert comparator(seed=None).seed is None


def test_the_new_name_gives_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comparator(n_boot=10, seed=1).add_predictions("m", P).run()
        bootstrap_ci(Y, P, "accuracy", n_boot=10, seed=1)
        list(bootstrap_indices(Y, 2, seed=1))
