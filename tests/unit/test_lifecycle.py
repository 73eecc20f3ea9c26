"""The model lifecycle state (streamscore.model.lifecycle): transitions, serving sets, the wire
form, and the fold of topic records that every reader (consumers, `models list`) agrees on."""

from __future__ import annotations

import pytest

from streamscore.backends.records import ModelRef, ServingSet
from streamscore.errors import LifecycleError
from streamscore.model.lifecycle import Lifecycle, LifecycleFold


def published(*roles: str) -> Lifecycle:
    state = Lifecycle("mlp")
    for version, role in enumerate(roles, start=1):
        state = state.publish(version, role, sha256=f"d{version}")
    return state


def served(state: Lifecycle) -> tuple[int, ...]:
    serving = state.serving_set()
    assert serving is not None
    return tuple(ref.version for ref in serving.served)


def test_a_shadow_is_scored_but_never_served() -> None:
    state = published("champion", "shadow")
    assert state.serving_set() == ServingSet((ModelRef("mlp", 1),), (ModelRef("mlp", 2, "shadow"),))
    assert [e.state for e in state.versions] == ["serving", "shadowing"]


def test_an_ensemble_member_serves_with_the_champion() -> None:
    serving = published("champion", "ensemble").serving_set()
    assert serving is not None and serving.is_ensemble and serving.members == (1, 2)
    assert serving.served_ref == ModelRef("mlp", 2, "ensemble")


def test_promote_then_rollback_returns_to_the_previous_champion() -> None:
    state = published("champion", "shadow")
    promoted = state.promote(2)
    assert served(promoted) == (2,) and promoted.entry(1).state == "retired"  # type: ignore[union-attr]
    assert promoted.revision > state.revision and promoted.serving_set().shadows == ()  # type: ignore[union-attr]
    back = promoted.rollback("accuracy fell")
    assert served(back) == (1,) and back.entry(2).state == "rolled-back"  # type: ignore[union-attr]
    assert "accuracy fell" in back.command and back.revision > promoted.revision
    with pytest.raises(LifecycleError) as failure:
        back.rollback()
    assert failure.value.reason == "no-rollback"


def test_withdrawing_the_champion_serves_the_one_before() -> None:
    state = published("champion", "champion", "shadow")
    assert served(state) == (2,)
    withdrawn = state.withdraw(2)
    assert served(withdrawn) == (1,) and withdrawn.needed_versions() == [1, 3]
    assert served(withdrawn.withdraw(3)) == (1,)
    with pytest.raises(LifecycleError):
        published("champion").withdraw(1)  # nothing would serve


def test_unknown_or_older_versions_are_refused_with_the_fix() -> None:
    state = published("champion", "champion")
    with pytest.raises(LifecycleError) as older:
        state.publish(2, "shadow")
    assert older.value.reason == "version-not-newer" and "--version 3" in older.value.message
    with pytest.raises(LifecycleError) as unknown:
        state.promote(7)
    assert unknown.value.reason == "unknown-version"


def test_the_wire_form_round_trips() -> None:
    state = published("champion", "ensemble", "shadow").promote(3)
    assert Lifecycle.from_json(state.to_json()) == state
    with pytest.raises(LifecycleError):
        Lifecycle.from_json(b"PK\x03\x04 an artifact, not a lifecycle")


def test_the_fold_keeps_the_newest_snapshot_and_adopts_newer_plain_records() -> None:
    first = published("champion")
    second = first.publish(2, "shadow")
    fold = LifecycleFold("mlp")
    assert fold.snapshot(second) and not fold.snapshot(first)  # an older snapshot never wins
    assert fold.state == second
    assert not fold.plain(2, "d2")  # a plain record of a known version changes nothing
    assert fold.plain(3, "d3", published_at=5)  # a newer one is a champion publish
    assert served(fold.state) == (3,) and fold.state.revision == second.revision + 1


def test_replaying_the_compacted_topic_rebuilds_the_same_state() -> None:
    """Compaction keeps the last record per key: the newest snapshot under the name is enough."""
    states = [published("champion")]
    states.append(states[-1].publish(2, "shadow"))
    states.append(states[-1].promote(2))
    states.append(states[-1].rollback())
    full, compacted = LifecycleFold("mlp"), LifecycleFold("mlp")
    for state in states:
        full.snapshot(state)
    compacted.snapshot(states[-1])
    assert full.state == compacted.state and served(full.state) == (1,)


def test_the_history_and_what_consumers_keep_installed_are_bounded() -> None:
    from streamscore.model.lifecycle import HISTORY, ROLLBACK_DEPTH

    state = published(*["champion"] * (HISTORY + 10))
    assert len(state.history) == HISTORY and state.history[-1] == HISTORY + 10
    assert state.needed_versions() == list(range(HISTORY + 10 - ROLLBACK_DEPTH, HISTORY + 11))
