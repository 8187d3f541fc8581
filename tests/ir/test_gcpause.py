"""gc_paused: the collector is off inside, back on after, and a large phase's objects are moved to the oldest
generation without a scan (unless the program froze objects itself, whose permanent generation stays)."""

from __future__ import annotations

import gc

import pytest

from archdsl import gcpause
from archdsl.gcpause import gc_paused


@pytest.fixture
def collector():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if not was:
        gc.disable()


def test_paused_inside_and_resumed_after(collector):
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_large_phase_is_promoted_and_garbage_still_collected(collector, monkeypatch):
    monkeypatch.setattr(gcpause, "PROMOTE_AT", 1000)
    gc.collect()
    with gc_paused():
        kept = [[i] for i in range(5000)]
        cycle: list = []
        cycle.append(cycle)
        del cycle
    assert gc.get_count()[0] < 1000          # moved on, not left for the youngest generation's next scan
    assert gc.get_freeze_count() == 0
    assert gc.collect() >= 1                 # the cycle is found by the next full collection
    assert len(kept) == 5000


def test_a_programs_frozen_objects_stay_frozen(collector, monkeypatch):
    monkeypatch.setattr(gcpause, "PROMOTE_AT", 1000)
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    with gc_paused():
        kept = [[i] for i in range(5000)]
    assert gc.get_freeze_count() == frozen
    assert len(kept) == 5000
