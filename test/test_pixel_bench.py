"""The seed-003 benchmark: the floating jaw's outcomes, friction that matters, the run end to end, metrics."""

import dataclasses
import json
import math

import numpy as np
import pybullet
import pytest

from grasp_cell.core.outcome import Outcome
from grasp_cell.core.transform import Transform
from grasp_cell.eval import pixel_bench
from grasp_cell.eval.pixel_bench import BenchRecord, compute_metrics, format_table
from grasp_cell.sim.config import CellConfig, PhysicsConfig
from grasp_cell.sim.floating_jaw import FloatingJaw
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.world import SimWorld

DOWN = np.diag([1.0, -1.0, -1.0])  # grasp z (approach) along world -z


@pytest.fixture(scope="module")
def jaw_world():
    world = SimWorld()
    yield world, FloatingJaw(world)
    world.close()


def place_box(world, size, mass, mu=0.5) -> int:
    world.clear_parts()
    on_floor = Transform(translation=[0.0, 0.0, world.bin_floor_z + size[2] / 2])
    body = world.add_part(PartSpec("box", size, mass), on_floor)
    pybullet.changeDynamics(body, -1, lateralFriction=mu, physicsClientId=world.client)
    return body


def top_down_grasp(world, x: float, height: float) -> Transform:
    """Fingertip centre ``height`` above the bin floor at (x, 0), closing along world x."""
    return Transform(DOWN, [x, 0.0, world.bin_floor_z + height])


def test_floating_jaw_lifts_a_box_and_misses_beside_it(jaw_world):
    world, jaw = jaw_world
    body = place_box(world, (0.03, 0.03, 0.03), 0.1)
    result = jaw.attempt(top_down_grasp(world, 0.0, 0.015), 0.05)
    assert result.outcome is Outcome.SUCCESS and result.success, result.message
    assert result.lifted == (body,)
    assert body not in world.parts  # lifted parts leave the world
    assert result.timings["total"] > 0

    body = place_box(world, (0.03, 0.03, 0.03), 0.1)
    result = jaw.attempt(top_down_grasp(world, 0.05, 0.015), 0.05)
    assert result.outcome is Outcome.MISSED, result.message
    assert body in world.parts and world.parts_in_bin() == 1


def test_friction_decides_whether_a_heavy_part_slips(jaw_world):
    world, jaw = jaw_world
    outcomes = {}
    for mu in (0.05, 1.0):
        place_box(world, (0.03, 0.04, 0.03), 0.5, mu)
        outcomes[mu] = jaw.attempt(top_down_grasp(world, 0.0, 0.015), 0.05).outcome
    assert outcomes == {0.05: Outcome.DROPPED, 1.0: Outcome.SUCCESS}


def test_a_light_part_squeezed_off_centre_is_held_not_passed_through():
    """With the world's 10 solver iterations the finger that reached the 10 g box first passed through it
    (the jaw "closed on nothing"); ``physics.grip_solver_iterations`` holds it."""
    outcomes = {}
    for iterations in (10, PhysicsConfig().grip_solver_iterations):
        config = dataclasses.replace(CellConfig(), physics=PhysicsConfig(grip_solver_iterations=iterations))
        with SimWorld(config) as world:
            jaw = FloatingJaw(world)
            place_box(world, (0.02, 0.045, 0.017), 0.01, mu=0.6)
            grasp = Transform(DOWN, [-0.004, 0.01, world.bin_floor_z + 0.006])  # 4 mm off the box's centre
            outcomes[iterations] = jaw.attempt(grasp, 0.055).outcome
            assert pybullet.getPhysicsEngineParameters(physicsClientId=world.client)["numSolverIterations"] == 10
    assert outcomes == {10: Outcome.MISSED, PhysicsConfig().grip_solver_iterations: Outcome.SUCCESS}


def test_scenes_are_fixed_by_seed_and_restored_exactly():
    assert pixel_bench.scene_seed("seen", 5, 0) == pixel_bench.scene_seed("seen", 5, 0)
    assert pixel_bench.scene_seed("seen", 5, 0) != pixel_bench.scene_seed("novel", 5, 0)
    seed = pixel_bench.scene_seed("seen", 3, 0)
    assert pixel_bench.scene_specs("seen", 3, seed) == pixel_bench.scene_specs("seen", 3, seed)
    with pixel_bench.scene_world(CellConfig(), "seen", 3, seed) as world:
        scene = pixel_bench.save_scene(world)
        world.clear_parts()
        pixel_bench.restore_scene(world, scene, 0.3)
        restored = [world.part_position(body) for body in world.parts]
        saved = [pose.translation for _, pose in scene]
        assert np.allclose(restored, saved, atol=0.002)


def test_benchmark_runs_end_to_end(tmp_path):
    results = pixel_bench.run_benchmark(
        ["random"], ["seen"], [2], scenes=1, mus=[0.6], top_k=3, workers=1, out_dir=tmp_path, progress=False
    )
    records = pixel_bench.read_records(tmp_path / "attempts.jsonl")
    assert [r.index for r in records if r.event == "attempt" and r.phase == "ap"] == [0, 1, 2]
    (end,) = [r for r in records if r.event == "sr_end"]
    assert end.parts_before == 2 and end.outcome in ("empty", "failures", "no_grasp")
    assert results["attempts"] == sum(r.event == "attempt" for r in records)
    (row,) = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert (row["model"], row["object_set"], row["count"], row["grasps_returned"]) == ("random", "seen", 2, 3)
    assert "| random | Depth |" in (tmp_path / "table.md").read_text()


def record(event, scene, mu, phase, outcome="", **values):
    return BenchRecord(event, "m", "seen", 5, scene, mu, phase, outcome=outcome, **values)


def attempts(scene, mu, phase, outcomes, lifted=1):
    return [
        record("attempt", scene, mu, phase, outcome, index=i, lifted=lifted if outcome == "success" else 0)
        for i, outcome in enumerate(outcomes)
    ]


def test_metrics_match_hand_computed_values():
    records = [
        # scene 0, mu 0.2: SR 2/3, PC 3/5 (one double pick), AP 3/4
        *attempts(0, 0.2, "sr", ["success", "missed"]),
        record("attempt", 0, 0.2, "sr", "success", index=2, lifted=2),
        record("sr_end", 0, 0.2, "sr", "no_grasp", parts_before=5, parts_after=2),
        record("ap_plan", 0, 0.2, "ap", grasps=4),
        *attempts(0, 0.2, "ap", ["success", "missed", "success", "success"]),
        # scene 0, mu 1.0: SR 1, PC 1, AP 1
        *attempts(0, 1.0, "sr", ["success"] * 5),
        record("sr_end", 0, 1.0, "sr", "empty", parts_before=5),
        record("ap_plan", 0, 1.0, "ap", grasps=4),
        *attempts(0, 1.0, "ap", ["success"] * 4),
        # scene 1, mu 0.2: nothing planned: SR and AP undefined, PC 0
        record("sr_end", 1, 0.2, "sr", "no_grasp", parts_before=5, parts_after=5),
        record("ap_plan", 1, 0.2, "ap", grasps=0),
        # scene 1, mu 1.0: SR 0, PC 0, AP 1/2
        *attempts(1, 1.0, "sr", ["dropped"] * 5),
        record("sr_end", 1, 1.0, "sr", "failures", parts_before=5, parts_after=5),
        record("ap_plan", 1, 1.0, "ap", grasps=2),
        *attempts(1, 1.0, "ap", ["success", "collision"]),
    ]
    records = [BenchRecord.from_json(r.to_json()) for r in records]  # through the raw log's format
    m = compute_metrics(records)[("m", "seen", 5)]
    assert math.isclose(m.success_rate, (2 / 3 + 1 + 0) / 3)
    assert math.isclose(m.percent_cleared, (3 / 5 + 1 + 0 + 0) / 4)
    assert math.isclose(m.average_precision, (3 / 4 + 1 + 1 / 2) / 3)
    assert math.isclose(m.grasps_returned, (4 + 4 + 0 + 2) / 4)
    assert (m.sr_attempts, m.ap_attempts, m.no_grasp_ends) == (13, 10, 2)
    table = format_table({("m", "seen", 5): m}, {"m": "RGB-D"})
    assert "| m | RGB-D | 55.56 | 40.00 | 75.00 |" in table


def test_results_are_recorded_in_the_model_cards(tmp_path):
    import json

    import yaml

    from grasp_cell.eval.pixel_bench import RESULTS_FILE, record_in_model_cards

    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {
            "model": "pixel_lite_depth",
            "object_set": "seen",
            "count": 5,
            "success_rate": 0.9,
            "percent_cleared": 0.95,
            "average_precision": 0.875,
        },
        {
            "model": "baseline",
            "object_set": "seen",
            "count": 5,
            "success_rate": 0.5,
            "percent_cleared": 0.5,
            "average_precision": 0.5,
        },
    ]
    (run / RESULTS_FILE).write_text(json.dumps({"metrics": rows, "options": {"scenes": 1}}))
    cards = tmp_path / "models"
    cards.mkdir()
    (cards / "pixel_lite_depth.yaml").write_text("model: pixel_lite_depth\n")
    assert record_in_model_cards(run, cards) == [cards / "pixel_lite_depth.yaml"]  # baseline has no card
    card = yaml.safe_load((cards / "pixel_lite_depth.yaml").read_text())
    assert card["model"] == "pixel_lite_depth"
    assert card["benchmark"]["results"] == [{"objects": "seen 5", "SR": 90.0, "PC": 95.0, "AP": 87.5}]
    assert card["benchmark"]["options"] == {"scenes": 1}
