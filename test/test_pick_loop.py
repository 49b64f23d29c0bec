"""The pick-until-empty loop, attempt log and metrics, on a scripted cell (no ROS, no physics)."""

import dataclasses
import json

import numpy as np
import pytest

from grasp_cell.core import CameraIntrinsics, Grasp, Outcome
from grasp_cell.core.pick import PickResult
from grasp_cell.drivers.base import Capture, DriverError
from grasp_cell.eval.attempt_log import AttemptLog, read_attempts
from grasp_cell.eval.metrics import grasp_rate_first, summarize
from grasp_cell.eval.pick_loop import PickUntilEmpty, PlanningError, StopRules


class ScriptedCell:
    """A bin of ``parts`` whose pick outcomes follow a script; captures can be made to fail."""

    def __init__(self, parts, outcomes, capture_faults=(), plan_faults=(), no_grasp_at=()):
        self.parts = parts
        self.outcomes = list(outcomes)
        self.capture_faults = set(capture_faults)
        self.plan_faults = set(plan_faults)
        self.no_grasp_at = set(no_grasp_at)
        self.calls = 0

    def capture(self):
        self.calls += 1
        if self.calls in self.capture_faults:
            raise DriverError("camera unplugged")
        depth = np.full((48, 64), 0.7, np.float32)
        return Capture(depth, CameraIntrinsics.default().scaled(64, 48), parts_in_bin=self.parts)

    def plan(self, capture):
        if self.calls in self.plan_faults:
            raise PlanningError("depth has 0.0% valid pixels")
        if self.calls in self.no_grasp_at:
            return []
        return [Grasp.from_approach([0, 0, 0.7], [0, 0, 1], "suction", 0.9, model="scripted")]

    def pick(self, grasp):
        outcome = self.outcomes.pop(0)
        removed = 1 if outcome is Outcome.SUCCESS else 0
        self.parts -= removed
        return PickResult(outcome, {"approach": 0.1, "grip": 0.1, "lift": 0.1, "place": 0.1}, "", removed)


def run(cell, tmp_path, rules=StopRules()):
    with AttemptLog(tmp_path) as log:
        loop = PickUntilEmpty(cell, log, rules, model_name="scripted")
        reason = loop.run()
    return reason, read_attempts(tmp_path)


def test_empties_the_bin_and_logs_each_attempt_once(tmp_path):
    S, M = Outcome.SUCCESS, Outcome.MISSED
    cell = ScriptedCell(parts=3, outcomes=[S, M, S, Outcome.COLLISION, S])
    reason, records = run(cell, tmp_path)
    assert reason == "bin empty"
    assert [r.outcome for r in records] == [S, M, S, Outcome.COLLISION, S]
    assert [r.attempt for r in records] == [1, 2, 3, 4, 5]
    assert [(r.parts_before, r.parts_after) for r in records] == [(3, 2), (2, 2), (2, 1), (1, 1), (1, 0)]
    summary = summarize(records, reason)
    assert summary.success_rate == pytest.approx(3 / 5)
    assert summary.percent_cleared == pytest.approx(1.0)
    assert summary.failures_by_cause == {"collision": 1, "missed": 1}
    assert summary.attempts == sum(summary.failures_by_cause.values()) + summary.successes


def test_stops_after_five_consecutive_failures(tmp_path):
    cell = ScriptedCell(parts=10, outcomes=[Outcome.SUCCESS] + [Outcome.DROPPED] * 5 + [Outcome.SUCCESS])
    reason, records = run(cell, tmp_path)
    assert reason == "5 consecutive failures" and len(records) == 6
    summary = summarize(records, reason)
    assert summary.percent_cleared == pytest.approx(0.1)


def test_grasp_rate_first_n_parts_counts_attempts_until_the_nth_part_is_out(tmp_path):
    """Seed 002's "n out of m": 2 of 4 parts took 3 attempts; the failures on the last parts are left out."""
    S, M = Outcome.SUCCESS, Outcome.MISSED
    cell = ScriptedCell(parts=4, outcomes=[S, M, S, M, M, S, M, M, M, M, M])
    _, records = run(cell, tmp_path)
    assert grasp_rate_first(records, 2) == (2, 3)
    assert grasp_rate_first(records, 3) == (3, 6)
    assert grasp_rate_first(records, 4) == (3, len(records))  # never got there: every attempt counts
    assert summarize(records).success_rate == pytest.approx(3 / len(records))


def test_attempt_limit(tmp_path):
    cell = ScriptedCell(parts=10, outcomes=[Outcome.SUCCESS] * 10)
    reason, records = run(cell, tmp_path, StopRules(max_attempts=4))
    assert reason == "attempt limit (4)" and len(records) == 4


def test_camera_and_planning_faults_are_logged_not_fatal(tmp_path):
    cell = ScriptedCell(parts=2, outcomes=[Outcome.SUCCESS] * 2, capture_faults={1}, plan_faults={2}, no_grasp_at={3})
    reason, records = run(cell, tmp_path)
    assert reason == "bin empty"
    assert [r.outcome for r in records] == [
        Outcome.DRIVER_ERROR, Outcome.DRIVER_ERROR, Outcome.NO_GRASP, Outcome.SUCCESS, Outcome.SUCCESS
    ]
    assert "camera unplugged" in records[0].message and "valid pixels" in records[1].message
    assert records[2].grasp is None and records[3].grasp["model"] == "scripted"


def test_records_are_on_disk_as_json_lines(tmp_path):
    cell = ScriptedCell(parts=1, outcomes=[Outcome.SUCCESS])
    run(cell, tmp_path)
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["outcome"] == "success" and set(data["phase_durations"]) >= {"capture", "plan", "grip"}


def test_already_empty_bin_attempts_nothing(tmp_path):
    reason, records = run(ScriptedCell(parts=0, outcomes=[]), tmp_path)
    assert reason == "bin empty" and records == []
    assert summarize(records).attempts == 0


class InterruptedCell(ScriptedCell):
    def pick(self, grasp):
        raise KeyboardInterrupt


def test_an_interrupted_attempt_is_still_logged(tmp_path):
    reason, records = run(InterruptedCell(parts=3, outcomes=[]), tmp_path)
    assert reason == "interrupted"
    assert len(records) == 1 and records[0].outcome is Outcome.DRIVER_ERROR
    assert "interrupted" in records[0].message and "plan" in records[0].message
    assert records[0].grasp is not None


class RankedCell(ScriptedCell):
    """Plans three grasps, best first."""

    def plan(self, capture):
        return [Grasp.from_approach([x, 0, 0.7], [0, 0, 1], "suction", quality, model="scripted")
                for x, quality in ((0.0, 0.9), (0.1, 0.8), (0.2, 0.7))]


def test_an_unreachable_grasp_gives_way_to_the_next_in_the_same_attempt(tmp_path):
    U, S = Outcome.UNREACHABLE, Outcome.SUCCESS
    cell = RankedCell(parts=2, outcomes=[U, S, U, U, U, S])
    reason, records = run(cell, tmp_path)
    assert reason == "bin empty" and [r.outcome for r in records] == [S, U, S]
    assert records[0].grasp["position"][0] == pytest.approx(0.1)
    assert "1 better-ranked grasp unreachable" in records[0].message
    assert records[1].grasp["position"][0] == pytest.approx(0.2)  # all three tried, all unreachable: one attempt
    assert records[0].phase_durations["approach"] == pytest.approx(0.2)  # both picks' time


def test_a_grasp_an_exploring_selection_chose_is_tried_alone(tmp_path):
    """Learning records say how their grasp was chosen: an unreachable exploring choice is not replaced."""

    class ExploringCell(RankedCell):
        def plan(self, capture):
            first, *rest = super().plan(capture)
            return [dataclasses.replace(first, selection="random"), *rest]

    U, S = Outcome.UNREACHABLE, Outcome.SUCCESS
    reason, records = run(ExploringCell(parts=1, outcomes=[U, S]), tmp_path)
    assert [r.outcome for r in records] == [U, S] and all(r.grasp["selection"] == "random" for r in records)
