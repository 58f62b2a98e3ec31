"""Schedules: expansion into phases, rates, validation, config round trips (no training)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlkit.errors import ArgumentTypeError, InvalidArgumentError, ScheduleError, TlkitError
from tlkit.finetune import schedules as S


def test_freeze_then_unfreeze_phases() -> None:
    s = S.FreezeThenUnfreeze(head_epochs=5, finetune_epochs=10, unfreeze=3, lr_factor=0.1)
    assert s.phases(9) == [S.Phase("head", 5, 0, 1.0), S.Phase("finetune", 10, 3, 0.1)]
    assert [p.unfrozen for p in S.FreezeThenUnfreeze(1, 1, unfreeze="all").phases(7)] == [0, 7]
    # more groups asked than the backbone has: all of them
    assert S.FreezeThenUnfreeze(1, 1, unfreeze=50).phases(4)[1].unfrozen == 4
    assert [p.name for p in S.FreezeThenUnfreeze(0, 3).phases(9)] == ["finetune"]
    assert [p.name for p in S.FreezeThenUnfreeze(3, 0).phases(9)] == ["head"]
    assert s.total_epochs == 15


def test_gradual_unfreezing_phases_and_rates() -> None:
    s = S.GradualUnfreezing({0: 0, 3: 2, 6: "all"}, epochs=10, lr_factor=0.5)
    phases = s.phases(9)
    assert [(p.name, p.epochs, p.unfrozen) for p in phases] == [
        ("head", 3, 0),
        ("unfreeze-2", 3, 2),
        ("full", 4, 9),
    ]
    assert [p.lr_scale for p in phases] == [1.0, 0.5, 0.25]
    assert sum(p.epochs for p in phases) == 10


def test_frozen_and_full_training() -> None:
    assert S.Frozen(7).phases(9) == [S.Phase("head", 7, 0, 1.0)]
    assert S.Frozen(7).phases(9)[0].frozen
    full = S.FullTraining(4, train_bn=True)
    assert full.phases(5) == [S.Phase("full", 4, 5, 1.0)]
    assert full.train_bn is True


def test_discriminative_group_rates() -> None:
    s = S.Frozen(1, lr_decay=0.5, lr_multipliers={"stage6": 0.3})
    assert s.group_rate("classifier", 0) == 1.0
    assert s.group_rate("head", 1) == 0.5
    assert s.group_rate("stage7", 2) == 0.25
    assert s.group_rate("stage6", 3) == 0.3  # explicit beats the decay
    assert S.Frozen(1).group_rate("stage1", 8) == 1.0  # no decay: one rate


def test_warmup_then_cosine_factor() -> None:
    s = S.FreezeThenUnfreeze(1, 2, warmup=1.0, cosine=True)
    phase = s.phases(9)[1]  # 2 epochs
    steps = 100
    assert s.warmup_steps(steps, phase) == 50
    factors = [s.lr_at(phase, i, steps) for i in range(steps)]
    assert factors[0] == pytest.approx(1 / 50)
    assert factors[49] == pytest.approx(1.0)
    assert all(b > a for a, b in itertools.pairwise(factors[:50]))  # rising warm-up
    assert all(b < a for a, b in itertools.pairwise(factors[50:]))  # falling cosine
    assert factors[-1] < 0.01
    flat = S.Frozen(3, cosine=False)
    assert [flat.lr_at(flat.phases(1)[0], i, 10) for i in (0, 5, 9)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.FreezeThenUnfreeze(0, 0), "at least 1"),
        (lambda: S.FreezeThenUnfreeze(2, 2, unfreeze=0), "unfreeze must be"),
        (lambda: S.FreezeThenUnfreeze(2, 2, unfreeze="some"), "unfreeze must be"),
        (lambda: S.FreezeThenUnfreeze(-1, 2), "head_epochs"),
        (lambda: S.FreezeThenUnfreeze(1, 2, lr_factor=math.nan), "lr_factor"),
        (lambda: S.Frozen(0), "epochs"),
        (lambda: S.Frozen(2, lr_decay=0.0), "lr_decay"),
        (lambda: S.Frozen(2, lr_decay=1.5), "lr_decay"),
        (lambda: S.Frozen(2, warmup=-1), "warmup"),
        (lambda: S.GradualUnfreezing({1: 2}, epochs=4), "epoch 0"),
        (lambda: S.GradualUnfreezing({0: 2, 2: 1}, epochs=4), "more groups"),
        (lambda: S.GradualUnfreezing({0: 0, 5: 1}, epochs=5), "larger than the last"),
        (lambda: S.GradualUnfreezing({}, epochs=5), "non-empty"),
        (lambda: S.Frozen(2, lr_multipliers={"head": -1}), r"lr_multipliers\['head'\]"),
    ],
)
def test_bad_arguments_name_the_argument(make, match: str) -> None:
    # A bad value is an InvalidArgumentError (#21), not a ScheduleError: nothing ran yet.
    with pytest.raises(InvalidArgumentError, match=match) as info:
        make()
    assert isinstance(info.value, TlkitError) and isinstance(info.value, ValueError)
    assert not isinstance(info.value, ScheduleError)
    assert info.value.argument is not None and info.value.argument.split("[")[0] in str(info.value)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: S.Frozen(True), "epochs must be an int >= 1, got True"),
        (lambda: S.Frozen(2.0), "epochs must be an int"),
        (lambda: S.Frozen(2, cosine="yes"), "cosine must be True or False"),
        (lambda: S.Frozen(2, train_bn=1), "train_bn must be True or False"),
        (lambda: S.Frozen(2, lr_multipliers=[0.5]), "lr_multipliers must be a mapping"),
        (lambda: S.Frozen(2, warmup="1"), "warmup must be a number"),
        (lambda: S.FreezeThenUnfreeze(2, 2, unfreeze=1.5), "unfreeze must be an int >= 0 or 'all'"),
        (lambda: S.GradualUnfreezing([0, 1], epochs=5), "milestones must be a mapping"),
        (lambda: S.get(3), "schedule must be a Schedule"),
        (lambda: S.from_config("Frozen"), "a schedule config is a dict"),
    ],
)
def test_wrong_types_are_type_errors(make, match: str) -> None:
    # A wrong type is an ArgumentTypeError (TlkitError + TypeError), not a ScheduleError.
    with pytest.raises(ArgumentTypeError, match=match) as info:
        make()
    assert isinstance(info.value, TlkitError) and isinstance(info.value, TypeError)
    assert not isinstance(info.value, ValueError)


def test_config_values_of_a_wrong_type_are_invalid_configs() -> None:
    # The config is from_config's argument: anything wrong inside it is a bad value of it,
    # an InvalidArgumentError naming the schedule (a model file turns it into a ModelFileError).
    with pytest.raises(InvalidArgumentError, match="bad Frozen config: epochs must be an int") as i:
        S.from_config({"class_name": "Frozen", "config": {"epochs": "3"}})
    assert i.value.argument == "config"
    with pytest.raises(InvalidArgumentError, match="unknown schedule"):
        S.from_config({"class_name": ["Frozen"], "config": {}})


def test_get_from_strings_and_configs() -> None:
    assert S.get("frozen:20") == S.Frozen(20)
    assert S.get("freeze_then_unfreeze:5,10,all") == S.FreezeThenUnfreeze(5, 10, "all")
    assert S.get("full:3") == S.FullTraining(3)
    s = S.Frozen(2)
    assert S.get(s) is s
    assert S.get(s.get_config()) == s
    for bad in ("frozen:x", "nope:1", "frozen:1,2,3,4,5"):
        with pytest.raises(InvalidArgumentError, match=f"schedule '{bad}'") as info:
            S.get(bad)
        assert info.value.argument == "identifier"
    with pytest.raises(InvalidArgumentError, match="unknown schedule"):
        S.from_config({"class_name": "os.system", "config": {}})
    with pytest.raises(InvalidArgumentError, match="bad Frozen config"):
        S.from_config({"class_name": "Frozen", "config": {"epochs": 2, "evil": 1}})
    with pytest.raises(InvalidArgumentError):
        S.from_config({"class_name": "Frozen"})


def test_repr_shows_non_defaults() -> None:
    assert repr(S.Frozen(3)) == "Frozen(epochs=3)"
    assert "lr_decay=0.5" in repr(S.FreezeThenUnfreeze(1, 1, lr_decay=0.5))


_options = st.fixed_dictionaries(
    {},
    optional={
        "lr_decay": st.floats(0.01, 1.0),
        "warmup": st.floats(0.0, 3.0),
        "cosine": st.booleans(),
        "train_bn": st.booleans(),
        "lr_multipliers": st.dictionaries(st.sampled_from(["stage1", "head"]), st.floats(0, 5)),
    },
)
_schedules = st.one_of(
    st.builds(S.Frozen, st.integers(1, 50)),
    st.builds(S.FullTraining, st.integers(1, 50)),
    st.builds(
        lambda h, f, u, lr, o: S.FreezeThenUnfreeze(h, f, u, lr, **o),
        st.integers(1, 20),
        st.integers(1, 20),
        st.one_of(st.integers(1, 12), st.just("all")),
        st.floats(0.0, 1.0),
        _options,
    ),
    st.builds(
        lambda cuts, counts, extra: S.GradualUnfreezing(
            dict(zip([0, *sorted(cuts)], sorted(counts), strict=False)),
            epochs=max(cuts, default=0) + extra,
        ),
        st.sets(st.integers(1, 30), max_size=4),
        st.sets(st.integers(0, 12), min_size=5, max_size=5),
        st.integers(1, 10),
    ),
)


@settings(max_examples=150, deadline=None)
@given(schedule=_schedules, groups=st.integers(1, 12))
def test_properties_of_any_schedule(schedule: S.Schedule, groups: int) -> None:
    # The config is JSON and comes back equal.
    config = json.loads(json.dumps(schedule.get_config()))
    assert S.from_config(config) == schedule
    phases = schedule.phases(groups)
    assert phases and all(p.epochs >= 1 for p in phases)
    # Never more groups than the backbone has; never fewer as training goes on.
    assert all(0 <= p.unfrozen <= groups for p in phases)
    assert all(b.unfrozen >= a.unfrozen for a, b in itertools.pairwise(phases))
    assert sum(p.epochs for p in phases) == schedule.total_epochs
