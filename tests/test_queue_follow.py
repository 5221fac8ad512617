"""How a campaign follows its experiments' queue items, from snapshots as a queue server
reports them between two of its own steps (the end-to-end cases, with real RE Managers, are in
test_workcells)."""

from __future__ import annotations

import pytest

from db import Database
from db.records import Experiment, ExperimentStatus
from orchestrator.execution.executor import Failed, GivenBack
from orchestrator.execution.queue import MISSING_POLLS, QueueExecutor
from orchestrator.execution.workcell import ItemState, Workcell

DIED = "RE Worker environment was destroyed"


def _running(eid: int) -> Experiment:
    return Experiment(
        id=eid, campaign_id=1, index=eid - 1, status=ExperimentStatus.RUNNING,
        conditions={}, failure_reason=None, planner_name="random", planner_version="1",
        seed=0, acquisition_value=None, predicted_mean=None, predicted_std=None,
        provenance={}, observables=None, run_uid=None, workcell="A",
    )  # fmt: skip


def _executor(tmp_path, requeue: bool) -> QueueExecutor:
    # a workcell's client is made without a request: nothing here talks to a manager
    cell = Workcell("A", zmq="tcp://127.0.0.1:9")
    db = Database(f"sqlite:///{tmp_path / 'follow.db'}")
    return QueueExecutor(db, [cell], "c-uid", "hot_injection", 0, lambda e: {},
                         requeue_on_worker_death=requeue)  # fmt: skip


def _follow(executor: QueueExecutor, experiment: Experiment, states: list[ItemState]):
    status = {"manager_state": "idle", "worker_environment_exists": True}
    return executor._follow(experiment, executor.workcells[0], (status, {experiment.id: states}))


def test_a_worker_death_read_before_its_put_back_copy_waits_for_the_copy(tmp_path):
    """Under requeue the queue server records the death and puts the item back in one step;
    a snapshot reading the queue before it and the history after sees the record alone. The
    experiment must not be given back then (it would run twice: the copy, and ours)."""
    executor, experiment = _executor(tmp_path, requeue=True), _running(1)
    died = ItemState("finished", "i1", "failed", message=DIED, attempt="a1")
    copy = ItemState("queued", "i2", attempt="a1")
    assert _follow(executor, experiment, [died]) == []
    assert _follow(executor, experiment, [died, copy]) == []  # the server's copy runs
    assert executor._stalled == {"A"}  # and the stopped queue is started for it
    # the count starts over: a later gap of one poll is a gap again
    assert _follow(executor, experiment, [died]) == []


def test_a_worker_death_whose_copy_never_comes_is_given_back_after_a_few_polls(tmp_path):
    executor, experiment = _executor(tmp_path, requeue=True), _running(1)
    died = ItemState("finished", "i1", "failed", message=DIED, attempt="a1")
    outcomes = [_follow(executor, experiment, [died]) for _ in range(MISSING_POLLS)]
    assert outcomes[:-1] == [[]] * (MISSING_POLLS - 1)
    [given_back] = outcomes[-1]
    assert isinstance(given_back, GivenBack) and "its worker died mid-plan" in given_back.reason


@pytest.mark.parametrize("requeue", [False, True])
def test_an_item_that_failed_of_itself_fails_its_experiment_at_once(tmp_path, requeue):
    executor, experiment = _executor(tmp_path, requeue), _running(1)
    failed = ItemState("finished", "i1", "failed", message="Plan failed: ValueError: x")
    [outcome] = _follow(executor, experiment, [failed])
    assert isinstance(outcome, Failed) and "ValueError: x" in outcome.reason
