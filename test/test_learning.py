"""Learning in the cell: experience records, weights snapshots, selection, seed 002's FCN and its trainer,
and the learning-run command on the simulated cell."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from grasp_cell.core import CameraIntrinsics, GripperKind, Outcome, Transform
from grasp_cell.core.grasp import Grasp
from grasp_cell.core.jaw import planar_grasp_rotation
from grasp_cell.eval.synthetic import Part, PartShape, overhead_camera, render_scene
from grasp_cell.learn.experience import ExperienceFeed, ExperienceStore, is_test, read_records
from grasp_cell.learn.online import learning_curve, main
from grasp_cell.learn.planar_learner import PlanarLearner, PlanarTrainSettings, example_of
from grasp_cell.models import Observation, available_models, create_model
from grasp_cell.models.planar_grasp import ANGLES, OPENINGS, POSITIONS, Canvases, Overview, PlanarGraspModel
from grasp_cell.models.planar_net import STRIDE, WINDOW, PlanarGraspNet
from grasp_cell.models.selection import ExplorationSchedule, decaying_exploration, select
from grasp_cell.models.snapshots import SnapshotFolder, SnapshotWatcher


def bin_scene(parts=()):
    """A rendered bin (0.6 m under the camera, 640 x 480) with the given parts."""
    scene = render_scene(list(parts), CameraIntrinsics.default(), overhead_camera(0.6))
    return Observation(scene.depth, scene.intrinsics, roi=scene.roi)


def box(ident, x, y, size=0.03, height=0.025):
    return Part(ident, PartShape.BOX, (size, size, height), Transform(translation=(x, y, 0.5 * height)))


def planar_grasp(x, y, z, theta, width):
    rotation = planar_grasp_rotation(theta)
    return Grasp(Transform(rotation, (x, y, z)), GripperKind.PARALLEL, 0.5, width=width, model="planar_fcn")


# --- experience ------------------------------------------------------------------------------------------
def test_experience_is_durable_resumable_and_splits_by_timestamp(tmp_path):
    observation = bin_scene([box(1, 0.0, 0.0)])
    store = ExperienceStore(tmp_path)
    grasp = planar_grasp(0.0, 0.0, 0.585, 0.3, 0.06)
    for n, outcome in enumerate([Outcome.SUCCESS, Outcome.MISSED, Outcome.COLLISION]):
        store.add(observation, replace(grasp, model_version=n, selection="random"), outcome, 1_700_000_000.0 + n)
    assert [r.reward for r in store.records] == [1.0, 0.0, 0.0]
    # a crash mid-line leaves a torn last line: reopening keeps the whole records and appends after them
    with open(tmp_path / "experience.jsonl", "a") as handle:
        handle.write('{"key": "000004", "timesta')
    reopened = ExperienceStore(tmp_path)
    assert len(reopened) == 3 and reopened.records[1].outcome == "missed"
    assert reopened.records[2].version == 2 and reopened.records[0].grasp["width"] == pytest.approx(0.06)

    # the next record starts on a line of its own, and a reader that follows the folder gets each once
    feed = ExperienceFeed(tmp_path)
    assert [r.key for r in feed.new_records()] == ["000001", "000002", "000003"] and feed.new_records() == []
    reopened.add(observation, grasp, Outcome.SUCCESS, 1_700_000_010.0)
    assert [r.key for r in read_records(tmp_path)] == ["000001", "000002", "000003", "000004"]
    assert [r.key for r in feed.new_records()] == ["000004"]

    loaded = reopened.load(reopened.records[0])  # the crop, with its own intrinsics and roi
    u, v = loaded.intrinsics.project([[0.0, 0.0, 0.575]])[0]
    assert loaded.depth[int(round(v)), int(round(u))] == pytest.approx(0.575, abs=2e-4)
    assert loaded.depth.shape[1] < observation.depth.shape[1] and loaded.roi is not None

    # seed 002: the split depends on the timestamp alone, about a fifth is test
    flags = [is_test(1_700_000_000.0 + 0.37 * n) for n in range(2000)]
    assert 0.17 < np.mean(flags) < 0.23
    assert flags == [is_test(1_700_000_000.0 + 0.37 * n) for n in range(2000)]


def test_snapshots_are_followed_by_version(tmp_path):
    folder = SnapshotFolder(tmp_path / "snapshots")
    watcher = SnapshotWatcher(tmp_path / "snapshots")
    assert folder.latest() is None and watcher.poll() is None
    assert folder.publish({"state_dict": {"w": torch.zeros(2)}}, {"attempts": 0}) == 0
    update = watcher.poll()
    assert update["version"] == 0 and torch.equal(update["checkpoint"]["state_dict"]["w"], torch.zeros(2))
    assert watcher.poll() is None  # nothing new
    assert folder.publish({"state_dict": {"w": torch.ones(2)}}, {"attempts": 20}) == 1
    update = watcher.poll()
    assert update["version"] == 1 and update["attempts"] == 20
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "latest.json", "snapshot_00000.pt", "snapshot_00001.pt"]


# --- selection -------------------------------------------------------------------------------------------
def test_selection_functions_follow_seed_002():
    rng = np.random.default_rng(0)
    psi = np.array([0.1, 0.9, 0.52, 0.3, 0.8, 0.7, 0.6, 0.2])
    valid = np.ones(psi.size, bool)
    valid[1] = False  # the best one is not allowed
    assert select("max", psi, valid, rng) == 4
    assert {select("max5", psi, valid, rng) for _ in range(200)} == {4, 5, 6, 2, 3}
    assert select("uncertain", psi, valid, rng) == 2
    drawn = np.bincount([select("probabilistic", psi, valid, rng) for _ in range(4000)], minlength=psi.size)
    assert drawn[1] == 0 and drawn[4] > 2.5 * drawn[0]  # about proportional to psi
    assert set(select("random", psi, valid, rng) for _ in range(500)) == set(np.flatnonzero(valid))
    with pytest.raises(ValueError, match="unknown selection"):
        select("greedy", psi, valid, rng)
    schedule = ExplorationSchedule(random_attempts=100)
    assert {schedule.method(n, rng) for n in range(100)} == {"random"}
    later = [schedule.method(500, rng) for _ in range(2000)]
    assert 0.35 < later.count("probabilistic") / 2000 < 0.5 and "max5" in later and "uncertain" in later
    assert decaying_exploration(0) == pytest.approx(0.5) and decaying_exploration(1000) == pytest.approx(0.1)


# --- the planar FCN --------------------------------------------------------------------------------------
def test_dense_pass_equals_the_net_on_each_window():
    """The 20 turned canvases judged at once give what the net gives a single training window cut at the
    same place and angle: training and inference see grasps the same way."""
    torch.manual_seed(0)
    observation = bin_scene([box(1, 0.05, 0.02), box(2, -0.08, -0.04, size=0.02), box(3, 0.1, -0.07)])
    model = PlanarGraspModel.untrained(seed=3)
    model.net.layers[0].weight.data.normal_()  # random but not tiny: differences would show
    overview = Overview.from_observation(observation)
    canvases = Canvases.of(overview)
    dense = model.predict(canvases)
    assert dense.shape == (ANGLES, len(OPENINGS), POSITIONS, POSITIONS)
    thetas = np.arange(ANGLES) * math.pi / ANGLES
    for angle, row, col in [(0, 20, 20), (7, 11, 25), (13, 30, 8), (19, 5, 33)]:
        centre = canvases.centres(angle, STRIDE * row, STRIDE * col)
        window = overview.windows(centre[None], thetas[angle:angle + 1], WINDOW)
        with torch.inference_mode():
            single = torch.sigmoid(model.net(window))[0, :, 0, 0].numpy()
        assert np.allclose(single, dense[angle, :, row, col], atol=1e-5)
    assert WINDOW + STRIDE * (POSITIONS - 1) == 196


def test_windows_turn_with_the_grasp_angle():
    """A 40 x 10 mm bar lying along camera x fills the window's columns at angle 0 and its rows at 90 deg."""
    bar = Part(1, PartShape.BOX, (0.04, 0.01, 0.02), Transform(translation=(0.02, 0.01, 0.01)))
    overview = Overview.from_observation(bin_scene([bar]))
    windows = overview.windows(np.array([[0.02, -0.01], [0.02, -0.01]]), np.array([0.0, math.pi / 2]), WINDOW)
    along, across = (windows[i, 0].numpy() > 0.2 for i in range(2))
    assert along.sum(axis=1).max() >= 14 and along.sum(axis=0).max() <= 6  # 16 cells along, 4 across
    assert across.sum(axis=0).max() >= 14 and across.sum(axis=1).max() <= 6


def _tips_mm(canvases, fingertips, x, y):
    """Fingertip heights [mm above the floor] per opening of the angle-0 grasp centred nearest camera (x, y)."""
    starts = np.arange(canvases.starts)
    centres = canvases.centres(0, starts[:, None], starts[None, :])
    row, col = np.unravel_index(np.argmin(np.hypot(centres[..., 0] - x, centres[..., 1] - y)), centres.shape[:2])
    return fingertips.tips[0, :, row, col] * 50.0  # HEIGHT_SCALE: 50 mm


def test_fingertips_stop_above_what_the_open_fingers_would_land_on():
    """Angle 0 closes along camera x. A 25 mm box at x = 0 with a 10 mm one beside it (x 45..75 mm): the
    40 and 60 mm openings go down to the usual depth (10 mm, 15 mm below the top); at 80 mm a finger lands
    on the low box, so the tips stop 3 mm above it (13 mm). A tall neighbour, or the wall, leaves no room."""
    jaw = PlanarGraspModel.untrained().jaw
    low = Overview.from_observation(bin_scene([box(1, 0.0, 0.0), box(2, 0.06, 0.0, height=0.01)]))
    canvases = Canvases.of(low)
    tips = _tips_mm(canvases, canvases.fingertips(jaw, 0.015, 0.006), 0.0, 0.0)
    assert tips == pytest.approx([10.0, 10.0, 13.0], abs=1.0)
    tall = Canvases.of(Overview.from_observation(bin_scene([box(1, 0.0, 0.0), box(2, 0.06, 0.0)])))
    tips = _tips_mm(tall, tall.fingertips(jaw, 0.015, 0.006), 0.0, 0.0)
    assert tips[:2] == pytest.approx([10.0, 10.0], abs=1.0) and np.isnan(tips[2])
    walled = Canvases.of(Overview.from_observation(bin_scene([box(1, 0.145, 0.0)])))  # 15 mm from the wall
    tips = _tips_mm(walled, walled.fingertips(jaw, 0.015, 0.006), 0.145, 0.0)
    assert np.isnan(tips).all()  # even at 40 mm the outer finger face would reach the wall (x = 0.175)


def test_plan_returns_parallel_grasps_inside_the_bin_from_the_selection():
    observation = bin_scene([box(1, 0.05, 0.02), box(2, -0.1, 0.05)])
    model = PlanarGraspModel.untrained(seed=1, selection="random")
    grasps = model.plan(observation, max_grasps=5)
    assert len(grasps) == 5 and model.last_selection == "random"
    assert all(g.gripper is GripperKind.PARALLEL and g.width in OPENINGS for g in grasps)
    assert [g.quality for g in grasps[1:]] == sorted((g.quality for g in grasps[1:]), reverse=True)
    for grasp in grasps:
        assert abs(grasp.position[0]) <= 0.176 and abs(grasp.position[1]) <= 0.126  # the bin floor, 0.35 x 0.25
        assert np.allclose(grasp.approach, [0, 0, 1])
        assert grasp.position[2] <= 0.6 - model.tip_clearance + 1e-6  # fingertips clear of the floor
    # the open fingers stay inside the bin's walls: its floor is 0.35 x 0.25 m around the optical axis
    for grasp in grasps:
        for sign in (1, -1):
            finger = grasp.position[:2] + sign * (0.5 * grasp.width + 0.01) * grasp.closing[:2]
            assert abs(finger[0]) <= 0.175 and abs(finger[1]) <= 0.125
    # exploitation: the best choice; on a scene it left unchanged it failed, so another of the best five,
    # and on a changed scene the best again
    model = PlanarGraspModel.untrained(seed=1, selection="max")
    first = model.plan(observation, max_grasps=3)
    assert model.last_selection == "max" and first[0].quality == pytest.approx(max(g.quality for g in first))
    second = model.plan(observation, max_grasps=3)
    assert model.last_selection == "max5"
    assert not np.allclose(second[0].position, first[0].position) or second[0].width != first[0].width \
        or not np.allclose(second[0].closing, first[0].closing)
    model.plan(bin_scene([box(1, 0.05, 0.02)]), max_grasps=3)
    assert model.last_selection == "max"


def test_model_reloads_new_snapshots_before_planning(tmp_path):
    folder = SnapshotFolder(tmp_path)
    net = PlanarGraspNet()
    torch.nn.init.constant_(net.layers[-1].bias, -3.0)  # every grasp predicted to fail
    folder.publish({"state_dict": net.state_dict()}, {"attempts": 40})
    model = PlanarGraspModel(selection="max", snapshots=tmp_path)
    observation = bin_scene([box(1, 0.0, 0.0)])
    low = model.plan(observation, max_grasps=1)[0].quality
    assert model.version == 0 and model.trained_attempts == 40
    torch.nn.init.constant_(net.layers[-1].bias, 3.0)
    folder.publish({"state_dict": net.state_dict()}, {"attempts": 60})
    high = model.plan(observation, max_grasps=1)[0].quality
    assert model.version == 1 and model.trained_attempts == 60 and high > 0.5 > low


# --- the trainer -----------------------------------------------------------------------------------------
def test_learner_learns_which_windows_hold_a_part(tmp_path):
    """Grasps centred on a box succeed, grasps on the empty floor fail: a few rounds separate them on the
    test split, and weighted retraining trusts the plausible examples more."""
    rng = np.random.default_rng(0)
    store = ExperienceStore(tmp_path)
    positions = [(-0.1, -0.05), (0.0, 0.05), (0.1, -0.06), (-0.12, 0.07), (0.08, 0.06)]
    scenes = [bin_scene([box(i + 1, x, y) for i, (x, y) in enumerate(positions)])]
    for n in range(120):
        on_part = n % 2 == 0
        x, y = positions[rng.integers(len(positions))] if on_part else (rng.uniform(-0.15, 0.15), 0.0)
        theta = rng.uniform(0, math.pi)
        store.add(scenes[0], planar_grasp(x, -y, 0.585, theta, OPENINGS[1]),  # camera y is against bin y
                  Outcome.SUCCESS if on_part else Outcome.MISSED, 1_700_000_000.0 + n)
    learner = PlanarLearner(PlanarTrainSettings(steps_per_round=60, batch_size=32), seed=0)
    for record in read_records(tmp_path):
        learner.add(record, store.load(record))
    window, opening = example_of(store.records[0], store.load(store.records[0]))
    assert window.shape == (WINDOW, WINDOW) and opening == 1 and window[18:22, 18:22].mean() > 0.3
    first = learner.train_round()
    assert first["train_examples"] + first["test_examples"] == 120 and first["test_examples"] > 10
    for _ in range(3):
        metrics = learner.train_round()
    assert metrics["test_accuracy"] >= 0.9 and metrics["test_loss"] < first["test_loss"]
    restored = PlanarLearner(seed=5)
    restored.restore(learner.checkpoint())
    assert restored.rounds == 4
    assert all(torch.equal(a, b) for a, b in zip(restored.net.state_dict().values(), learner.net.state_dict().values()))


def test_learning_curve_is_success_over_the_last_hundred():
    rewards = [0.0] * 100 + [1.0] * 50
    curve = learning_curve(rewards)
    assert curve[0] == 0.0 and curve[99] == 0.0 and curve[149] == pytest.approx(0.5)
    assert learning_curve([1.0, 0.0, 1.0])[-1] == pytest.approx(2 / 3)


# --- the learning run --------------------------------------------------------------------------------------
def test_learning_run_records_trains_follows_resumes_and_ships(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--attempts", "24", "--retrain-every", "8", "--parts", "6"]
    assert main(args) == 0
    records = read_records(out / "experience")
    assert len(records) == 24 and all(r.model == "planar_fcn" and r.selection == "random" for r in records)
    assert {r.outcome for r in records} <= {o.value for o in Outcome} - {"driver_error", "no_grasp"}
    assert (out / "learning_curve.png").stat().st_size > 0
    rounds = [json.loads(line) for line in (out / "training.jsonl").read_text().splitlines()]
    assert len(rounds) >= 1 and rounds[0]["attempts"] >= 8
    # the model followed the trainer: later attempts were planned with newer weights
    assert records[0].version == 0 and records[-1].version >= 1
    # run again with a larger budget: it resumes, keeps the records and numbers on
    assert main(args[:3] + ["--attempts", "30"] + args[5:]) == 0
    records = read_records(out / "experience")
    assert len(records) == 30 and [r.attempt for r in records] == list(range(1, 31))
    sessions = (out / "sessions.jsonl").read_text().splitlines()
    assert len(sessions) == 2 and json.loads(sessions[1])["attempts_this_session"] == 6
    with pytest.raises(ValueError, match="other settings"):
        main(["run", "--out", str(out), "--attempts", "31", "--parts", "7"])

    # evaluate with exploration off, ship into a models folder: the registry then serves it by name
    models = tmp_path / "models"
    monkeypatch.setenv("GRASP_CELL_MODELS_DIR", str(models))
    assert main(["evaluate", "--out", str(out), "--bins", "1", "--ship"]) == 0
    card = yaml.safe_load((models / "planar_fcn.yaml").read_text())
    assert card["evaluation"]["bins"] == 1 and card["evaluation"]["attempts"] >= 1
    assert card["data"]["attempts"] >= 8 and 0.0 <= card["learning_curve"][30] <= 100.0
    assert "planar_fcn" in available_models()
    model = create_model("planar_fcn", gripper="parallel")
    assert model.selection == "max" and model.plan(bin_scene([box(1, 0.0, 0.0)]), max_grasps=1)
    main(["curves", str(out), "--png", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").stat().st_size > 0


# --- seed 001's suction-region net ---------------------------------------------------------------------------
def test_augmentation_carries_the_suction_cell_through_turns_and_flips():
    from grasp_cell.learn.region_learner import CENTRE, augment
    from grasp_cell.models.region_net import PATCH

    rng = np.random.default_rng(0)
    rgb = np.zeros((3, PATCH, PATCH), np.float32)
    heights = np.zeros((1, PATCH, PATCH), np.float32)
    heights[0, CENTRE, CENTRE] = 1.0  # the pixel the cup went to
    heights[0, 10, 20] = 0.5  # something off-centre, to see the turn
    seen = set()
    for _ in range(40):
        _, turned, row, col = augment(rgb, heights, rng)
        (r,), (c,) = np.nonzero(turned[0] == 1.0)
        assert (r // 3, c // 3) == (row, col)
        seen.add((row, col, tuple(np.argwhere(turned[0] == 0.5)[0])))
    assert len(seen) == 8  # four turns x two flips, each distinct


def test_region_model_plans_vertical_suction_in_the_bin_and_explores_by_eq_4():
    from grasp_cell.models.suction_region import SuctionRegionModel

    scene = render_scene([box(1, 0.05, 0.02), box(2, -0.1, 0.05)], CameraIntrinsics.default(), overhead_camera(0.6))
    colour = np.full(scene.depth.shape + (3,), 128, np.uint8)
    observation = Observation(scene.depth, scene.intrinsics, colour, scene.roi)
    model = SuctionRegionModel(selection="schedule", seed=0)
    grasps = model.plan(observation, max_grasps=4)
    assert 1 <= len(grasps) <= 4 and all(g.gripper is GripperKind.SUCTION for g in grasps)
    u_min, v_min, u_max, v_max = scene.roi
    for grasp in grasps:
        u, v = grasp.pixel
        assert u_min <= u < u_max and v_min <= v < v_max and (u - u_min + 24) % 3 == 1
        assert np.allclose(grasp.approach, [0, 0, 1]) and grasp.position[2] == pytest.approx(scene.depth[v, u])
    # eq. 4 at n = 0: half the choices random
    methods = [model.plan(observation, max_grasps=1)[0].selection for _ in range(60)]
    assert 15 < methods.count("random") < 45 and set(methods) == {"random", "max"}
    model.trained_attempts = 5000  # 0.5 x 5^-5: exploration all but over
    assert {model.plan(observation, max_grasps=1)[0].selection for _ in range(20)} == {"max"}


@pytest.mark.parametrize("encoder", ["random", "trained"])
def test_region_learner_trains_the_decoder_and_only_trains_a_frozen_encoder_if_asked(tmp_path, encoder):
    from grasp_cell.learn.region_learner import RegionLearner, RegionTrainSettings
    from grasp_cell.models.suction_region import SuctionRegionModel

    store = ExperienceStore(tmp_path)
    scene = render_scene([box(1, 0.05, 0.02), box(2, -0.1, 0.05)], CameraIntrinsics.default(), overhead_camera(0.6))
    observation = Observation(scene.depth, scene.intrinsics, np.full(scene.depth.shape + (3,), 90, np.uint8), scene.roi)
    for n, (x, y, outcome) in enumerate([(0.05, -0.02, Outcome.SUCCESS), (0.0, 0.1, Outcome.MISSED)] * 6):
        grasp = Grasp.from_approach((x, y, 0.575 if outcome is Outcome.SUCCESS else 0.6), (0, 0, 1),
                                    GripperKind.SUCTION, 0.5, model="suction_region")
        store.add(observation, grasp, outcome, 1_700_000_000.0 + n)
    learner = RegionLearner(RegionTrainSettings(encoder=encoder, steps_per_round=3, batch_size=4), seed=0)
    for record in store.records:
        learner.add(record, store.load(record))
    encoder_before = [p.detach().clone() for p in learner.net.encoder.parameters()]
    decoder_before = [p.detach().clone() for p in learner.net.decoder_parameters()]
    metrics = learner.train_round()
    assert metrics["train_examples"] + metrics["test_examples"] == 12 and np.isfinite(metrics["train_loss"])
    changed = [not torch.equal(a, b) for a, b in zip(encoder_before, learner.net.encoder.parameters())]
    assert any(changed) == (encoder == "trained")
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, learner.net.decoder_parameters()))
    # its checkpoint is what the model in service loads
    model = SuctionRegionModel(learner.checkpoint())
    assert model.plan(observation, max_grasps=1)
    with pytest.raises(ValueError, match="pretrained encoder"):
        RegionLearner(RegionTrainSettings(encoder="pretrained"))


def test_encoder_pretraining_uses_images_only_and_lowers_its_loss():
    from grasp_cell.learn.region_learner import pretrain_encoder
    from grasp_cell.models.region_net import ResNetEncoder

    scenes = [render_scene([box(1, x, 0.0), box(2, -x, 0.05)], CameraIntrinsics.default(), overhead_camera(0.6))
              for x in (0.03, 0.08, 0.12)]
    images = [Observation(s.depth, s.intrinsics, np.full(s.depth.shape + (3,), 100, np.uint8), s.roi) for s in scenes]
    state, losses = pretrain_encoder(images, steps=12, batch_size=4)
    assert len(losses) == 12 and np.mean(losses[-4:]) < np.mean(losses[:4])
    ResNetEncoder().load_state_dict(state)  # a whole encoder, ready to freeze


def test_the_trainer_stops_when_its_learning_run_is_killed(tmp_path):
    """A learning run killed hard (SIGKILL: no cleanup runs) must not leave its trainer publishing weights
    into the folder, where a new run would find them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "grasp_cell.learn.online", "run", "--out", str(out), "--attempts", "100000"]
    run = subprocess.Popen(command + ["--parts", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "snapshots" / "latest.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "snapshots" / "latest.json").exists()
        children = [int(pid) for path in Path(f"/proc/{run.pid}/task").glob("*/children")
                    for pid in path.read_text().split()]
        assert children  # the trainer process
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in children):
        assert time.monotonic() < deadline, "the trainer outlived its run"
        time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return "Z"
