"""The three-finger hand and seed 004's floating grasp lab (real PyBullet, no gravity)."""

import json
import math

import numpy as np
import pybullet
import pytest
import torch
import yaml

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.sim.floating_hand import FloatingHand, GraspLabel, random_rotation
from grasp_cell.sim.hand import FINGERS, PHALANGES, HandGeometry, joint_name
from grasp_cell.sim.parts import PartSpec

DOWN = rotation_about_axis([1.0, 0.0, 0.0], math.pi)  # approach along the object frame's -z


@pytest.fixture(scope="module")
def hand():
    with FloatingHand() as lab:
        yield lab


def test_hand_has_three_fingers_of_three_phalanges_and_a_tcp_past_the_palm(hand):
    kwargs = {"physicsClientId": hand.client}
    joints = {pybullet.getJointInfo(hand.hand, j, **kwargs)[1].decode(): j
              for j in range(pybullet.getNumJoints(hand.hand, **kwargs))}
    geometry = HandGeometry()
    for finger in FINGERS:
        for k, phalanx in enumerate(PHALANGES):
            info = pybullet.getJointInfo(hand.hand, joints[joint_name(finger, phalanx)], **kwargs)
            assert info[2] == pybullet.JOINT_REVOLUTE and (info[8], info[9]) == (geometry.open[k], geometry.closed[k])
    hand.place(Transform.identity())
    tcp = pybullet.getLinkState(hand.hand, joints["hand_tcp_joint"], **kwargs)[4]
    assert np.allclose(tcp, [0.0, 0.0, 0.0], atol=1e-6)  # placing puts the tcp on the pose
    # closing curls finger a (-y side) and fingers b, c (+y side) towards each other
    hand.place(Transform.identity(), closed=1.0)
    tips = {f: pybullet.getLinkState(hand.hand, joints[joint_name(f, "distal")], **kwargs)[4] for f in FINGERS}
    hand.place(Transform.identity())
    open_tips = {f: pybullet.getLinkState(hand.hand, joints[joint_name(f, "distal")], **kwargs)[4] for f in FINGERS}
    assert tips["a"][1] > open_tips["a"][1] and tips["b"][1] < open_tips["b"][1] and tips["c"][1] < open_tips["c"][1]


@pytest.mark.parametrize("closed", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_finger_points_lie_on_the_simulated_fingers(hand, closed):
    """The planner's closing sweep (``HandGeometry.finger_points``) against the hand the lab simulates, placed as
    far closed: every point on a finger lies in its phalanges' bounding boxes, and every box holds points."""
    kwargs = {"physicsClientId": hand.client}
    geometry = HandGeometry()
    joints = {pybullet.getJointInfo(hand.hand, j, **kwargs)[1].decode(): j
              for j in range(pybullet.getNumJoints(hand.hand, **kwargs))}
    hand.place(Transform.identity(), closed=closed)  # the tcp at the origin: the tcp frame is the world's
    angles = [a + closed * (b - a) for a, b in zip(geometry.open, geometry.closed)]
    points = geometry.finger_points(angles, spacing=0.005).reshape(len(FINGERS), -1, 3)  # per finger
    if 0.0 < closed < 1.0:
        assert np.allclose(geometry.closing_points((closed,), spacing=0.005), points.reshape(-1, 3))
    for finger, on_finger in zip(FINGERS, points):
        boxes = [np.array(pybullet.getAABB(hand.hand, joints[joint_name(finger, phalanx)], **kwargs))
                 for phalanx in PHALANGES]
        inside = [np.all((on_finger >= low - 0.001) & (on_finger <= high + 0.001), axis=1) for low, high in boxes]
        assert np.all(np.any(inside, axis=0)), f"finger {finger}: points off its phalanges"
        assert all(np.any(held) for held in inside)


def test_open_points_are_the_palm_and_the_fingers_open_and_straight():
    geometry = HandGeometry()
    outline = geometry.open_points()
    straight = geometry.finger_points((0.0, 0.0, 0.0))
    assert np.allclose(outline[-len(straight):], straight)
    assert np.isclose(outline[:, 2].max(), sum(geometry.phalanges) + geometry.palm_face - geometry.tcp)  # tips
    # half closed, the fingers have curled up from their lowest reach, finger a (-y) across towards b, c (+y)
    half = geometry.closing_points((0.5,)).reshape(len(FINGERS), -1, 3)
    assert half[..., 2].max() < straight[:, 2].max() - 0.01
    assert half[0, :, 1].max() > 0.0 > half[1, :, 1].min()


def test_qualified_means_clear_when_open_and_overlapping_when_closed(hand):
    hand.set_object(PartSpec("sphere", (0.06,), 0.1))
    assert hand.qualified(Transform(DOWN, (0.0, 0.0, -0.02)))  # between the fingers
    assert not hand.qualified(Transform(DOWN, (0.0, 0.0, 0.4)))  # far away: the closed hand misses it
    assert not hand.qualified(Transform(DOWN, (0.0, 0.0, -0.07)))  # the palm would sit in it
    assert hand.distance(Transform(DOWN, (0.0, 0.0, -0.07))) < 0.0 < hand.distance(Transform(DOWN, (0.0, 0.0, 0.2)))
    poses = hand.sample_qualified(np.random.default_rng(0), slides=10)
    assert poses and all(hand.qualified(pose) for pose in poses)
    inside = hand.sample_qualified(np.random.default_rng(0), slides=10, colliding=True)
    assert inside and all(-0.03 < hand.distance(pose, 0.0) < 0.0 for pose in inside)  # just inside


@pytest.mark.parametrize("rule, failure", [("still_moving", "knocked away"), ("not_held", "not held")])
def test_trials_tell_robust_from_knocked_away_by_either_rule(hand, rule, failure):
    rng = np.random.default_rng(1)
    hand.failure_rule = rule
    try:
        hand.set_object(PartSpec("sphere", (0.06,), 0.1))
        held = hand.trial(Transform(DOWN, (0.0, 0.0, -0.02)), rng)
        assert held.label is GraspLabel.ROBUST, held.detail
        # at the fingertips' reach the sphere is pushed away while the fingers close
        flicked = hand.trial(Transform(DOWN, (0.0, 0.0, 0.06)), rng)
        assert flicked.label is GraspLabel.FAILED and failure in flicked.detail, flicked.detail
    finally:
        hand.failure_rule = "still_moving"


def test_random_rotations_are_proper_and_spread():
    rng = np.random.default_rng(2)
    rotations = np.array([random_rotation(rng) for _ in range(500)])
    assert np.allclose(np.linalg.det(rotations), 1.0)
    assert np.abs(rotations[:, :, 2].mean(axis=0)).max() < 0.1  # z axes all round the sphere


# --- seed 004's data, net and pose optimisation ----------------------------------------------------------
@pytest.fixture(scope="module")
def hand_data(tmp_path_factory):
    from grasp_cell.learn.hand_data import ShardCounts, make_object_shard

    folder = tmp_path_factory.mktemp("hand_data")
    for index in (0, 9):  # object 9 is unseen
        make_object_shard((str(folder), index, 0, ShardCounts(grasps=8, colliding=3, above=4, above_colliding=2,
                                                              clearance=6)))
    return folder


def test_hand_dataset_pairs_labelled_poses_with_images_of_their_object(hand_data):
    from grasp_cell.learn.hand_data import CLEARANCE_SEARCH, IMAGE_CELL, IMAGE_PIXELS, LABELS
    from grasp_cell.learn.train_hand_quality import HandGrasps

    data = HandGrasps.load(hand_data)
    assert list(data.objects) == [0, 9] and data.images.shape[1:] == (20, IMAGE_PIXELS, IMAGE_PIXELS)
    assert list(data.unseen()) == [data.objects[s] == 9 for s in data.slot]
    assert set(np.unique(data.label)) <= set(range(len(LABELS)))
    assert (data.label == LABELS.index("colliding")).sum() == 2 * (3 + 2)  # random and from above, per object
    assert (data.label == LABELS.index("clearance")).sum() == 2 * 6
    assert np.sum(data.label < LABELS.index("colliding")) == 2 * (8 + 4)
    # every pose has the open hand's distance to its object: clear for qualified ones, inside for colliding ones
    assert np.all(data.distance[data.label < LABELS.index("colliding")] >= 0.0)
    assert np.all(data.distance[data.label == LABELS.index("colliding")] < 0.0)
    measured = data.distance[data.label == LABELS.index("clearance")]
    assert np.all(measured < CLEARANCE_SEARCH) and np.ptp(measured) > 0.005
    # each image sees its object from above, centred, its lowest point at height 0 (z of T_img_obj)
    for slot in range(2):
        for k in range(3):
            heights = data.images[slot, k]
            rows, cols = np.nonzero(heights > 0)
            middle = 0.5 * (IMAGE_PIXELS - 1)
            assert abs(rows.mean() - middle) < 0.25 * IMAGE_PIXELS and abs(cols.mean() - middle) < 0.25 * IMAGE_PIXELS
            assert heights.max() > 0.005 and IMAGE_CELL * IMAGE_PIXELS > 2 * 0.09


def test_training_steps_and_optimiser_gradients(hand_data):
    from grasp_cell.learn.hand_optimise import PoseObjective, optimise
    from grasp_cell.learn.train_hand_quality import HandGrasps, TrainSettings, train

    data = HandGrasps.load(hand_data)
    net, history = train(data, TrainSettings(epochs=2, channels=8, batch=4), threads=1, log=lambda _: None)
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    row = 0
    slot, image = int(data.slot[row]), int(data.image[row])
    T_img_start = Transform.from_matrix(data.T_img_obj[slot, image] @ data.T_obj_tcp[row])
    objective = PoseObjective(net, data.images[slot, image], T_img_start)
    x = np.array([0.1, -0.2, 0.05, 0.1, 0.2, -0.1])
    _, gradient = objective.logit_and_gradient(x)
    numeric = np.array([(objective.logit_and_gradient(x + e)[0] - objective.logit_and_gradient(x - e)[0]) / 2e-4
                        for e in np.eye(6) * 1e-4])
    assert np.allclose(gradient, numeric, atol=2e-2 * max(1.0, np.abs(numeric).max()))
    end, summary = optimise(objective)  # model-free: the logit alone, which BFGS can only raise
    assert summary["end_logit"] >= summary["start_logit"] - 1e-6
    assert np.allclose(objective.pose(np.zeros(6)).as_matrix(), T_img_start.as_matrix())


@pytest.mark.parametrize("frame, stages", [("grasp", 4), ("hand", 3)])
def test_batch_norm_net_trains_saves_and_loads_the_same(hand_data, tmp_path, frame, stages):
    """The trainer's command writes a batch-normalised net whose normalisation learnt running statistics,
    and ``load_quality_net`` rebuilds it to give the same logits."""
    from grasp_cell.learn.train_hand_quality import HandGrasps, main
    from grasp_cell.models.hand_quality_net import load_quality_net

    assert main(["--data", str(hand_data), "--frame", frame, "--batch-norm", "--epochs", "1", "--threads", "1",
                 "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    weights = tmp_path / f"hand_quality_6d_{frame}_bn.pt"
    net = load_quality_net(weights)
    norms = [m for m in net.convolutions if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == stages and all(int(m.num_batches_tracked) > 0 for m in norms)
    assert not torch.allclose(norms[0].running_mean, torch.zeros_like(norms[0].running_mean))
    data = HandGrasps.load(hand_data)
    rows = np.arange(6)
    inputs = data.batch(rows, data.image[rows])[:3]
    again = load_quality_net(weights)
    with torch.no_grad():
        assert torch.equal(net(*inputs), again(*inputs))
        assert not torch.allclose(net(*inputs), net(*inputs[:1], inputs[1] + 0.01, inputs[2]))
    assert yaml.safe_load(weights.with_suffix(".yaml").read_text())["trained_by"].endswith("--batch-norm")


def test_saved_net_is_evaluated_on_the_test_sets_it_was_trained_beside(hand_data, tmp_path):
    """eval_hand_quality draws the trainer's test sets again from the net's settings: one view gives the figures
    the trainer wrote into the card; the mean over the 8 symmetric views is another function of the examples."""
    from grasp_cell.learn.eval_hand_quality import test_accuracy
    from grasp_cell.learn.train_hand_quality import HandGrasps, main

    assert main(["--data", str(hand_data), "--frame", "hand", "--batch-norm", "--symmetries", "--channels", "8",
                 "--epochs", "1", "--threads", "1", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    weights = tmp_path / "hand_quality_6d_hand_bn.pt"
    final = yaml.safe_load(weights.with_suffix(".yaml").read_text())["final"]
    data = HandGrasps.load(hand_data)
    one, eight = test_accuracy(weights, data), test_accuracy(weights, data, views=8)
    for name in ("seen", "unseen"):
        assert one[name]["accuracy"] == pytest.approx(final[f"{name}_accuracy"], abs=1e-4)
        assert one[name]["loss"] == pytest.approx(final[f"{name}_loss"], abs=1e-4)
        assert eight[name]["loss"] != pytest.approx(one[name]["loss"], abs=1e-6)
    assert one["examples"]["unseen"] > 0


def test_label_noise_reruns_are_deterministic_at_the_same_pose_and_nudged_within_the_scale(hand_data, tmp_path):
    from grasp_cell.learn.hand_label_noise import SCALES, main, nudged

    rng = np.random.default_rng(0)
    T = Transform(random_rotation(rng), (0.01, -0.02, 0.03))
    for shift, turn in SCALES.values():
        for _ in range(20):
            moved = nudged(T, shift, turn, rng)
            assert np.linalg.norm(moved.translation - T.translation) <= shift + 1e-12
            relative = T.rotation.T @ moved.rotation
            assert math.acos(np.clip((np.trace(relative) - 1) / 2, -1, 1)) <= turn + 1e-9
    out = tmp_path / "noise.json"
    assert main(["--data", str(hand_data), "--per-object", "2", "--perturbations", "1", "--workers", "1",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["poses"] == len(result["records"]) > 0
    assert result["same_pose"] == 1.0  # the lab repeats itself (399 of 400 poses of data/hand_held)
    for record in result["records"]:
        assert record["stored"] in ("robust", "failed") and all(len(record[s]) == 1 for s in SCALES)
    assert all(0.0 <= result[s] <= 1.0 for s in SCALES)


def test_clearance_net_learns_distances_and_its_barrier_enters_the_objective(hand_data):
    import torch

    from grasp_cell.learn.hand_optimise import BARRIER_ALPHA, BARRIER_EPS, LEARNED_SOFTNESS, PoseObjective, optimise
    from grasp_cell.learn.train_hand_quality import HandGrasps, TrainSettings, train
    from grasp_cell.models.hand_quality_net import CLEARANCE_SCALE

    data = HandGrasps.load(hand_data)
    quality, _ = train(data, TrainSettings(epochs=1, channels=8, batch=4), threads=1, log=lambda _: None)
    clearance, history = train(data, TrainSettings(target="clearance", epochs=12, channels=8, batch=8), threads=1,
                               log=lambda _: None)
    assert clearance.target == "clearance" and {"seen_error_mm", "unseen_error_mm"} <= set(history[-1])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    row = int(np.flatnonzero(data.label == 0)[0])
    slot, image = int(data.slot[row]), int(data.image[row])
    T_img_start = Transform.from_matrix(data.T_img_obj[slot, image] @ data.T_obj_tcp[row])
    plain = PoseObjective(quality, data.images[slot, image], T_img_start)
    barred = PoseObjective(quality, data.images[slot, image], T_img_start, clearance_net=clearance)
    x = np.array([0.05, 0.1, -0.05, 0.1, -0.1, 0.2])
    pose = barred.pose(x)
    with torch.no_grad():
        predicted = CLEARANCE_SCALE * float(clearance(torch.from_numpy(data.images[slot, image])[None, None],
                                                      torch.tensor(pose.translation[None], dtype=torch.float32),
                                                      torch.tensor(pose.rotation[None], dtype=torch.float32))[0])
    soft = LEARNED_SOFTNESS * math.log1p(math.exp(predicted / LEARNED_SOFTNESS))
    value, gradient = barred.logit_and_gradient(x, barriers=True)
    assert value == pytest.approx(plain.logit_and_gradient(x)[0] - BARRIER_ALPHA / (BARRIER_EPS + soft), rel=1e-4)
    numeric = np.array([(barred.logit_and_gradient(x + e, True)[0] - barred.logit_and_gradient(x - e, True)[0])
                        / 2e-4 for e in np.eye(6) * 1e-4])
    assert np.allclose(gradient, numeric, rtol=0.05, atol=2e-2 * max(1.0, np.abs(numeric).max()))
    with torch.no_grad():
        clearance.head[-1].weight.zero_()
        clearance.head[-1].bias.fill_(-1.0)  # now it predicts every pose 10 mm inside the object
    end, summary = optimise(barred)
    assert summary["kept_start"] and np.allclose(end.as_matrix(), T_img_start.as_matrix())


def test_image_hull_gives_the_open_hands_distance_to_what_the_image_sees():
    import torch

    from grasp_cell.learn.hand_data import IMAGE_CELL, IMAGE_PIXELS
    from grasp_cell.learn.hand_optimise import ImageHull

    heights = np.zeros((IMAGE_PIXELS, IMAGE_PIXELS), np.float32)
    middle = IMAGE_PIXELS // 2
    heights[middle - 8:middle + 8, middle - 8:middle + 8] = 0.05  # a 60 mm square block, 50 mm tall
    hull = ImageHull.of(heights)
    down = torch.from_numpy(DOWN)
    reach = float(HandGeometry().open_points()[:, 2].max())  # the fingertips, past the tcp along the approach

    def distance(z: float) -> float:
        return float(hull.distance(torch.tensor([0.0, 0.0, z], dtype=torch.float64), down))

    assert distance(0.15) == pytest.approx(0.15 - reach - 0.05, abs=IMAGE_CELL)  # fingertips over the block's top
    assert distance(0.40) > 0.055  # beyond the field's padding (60 mm) it stays at its edge's value
    assert distance(-0.03) < -0.015  # the palm face 20 mm into the block's top
    assert distance(-0.16) == pytest.approx(0.04, abs=IMAGE_CELL)  # under it: the palm's back 40 mm below its base
    position = torch.tensor([0.0, 0.0, 0.15], dtype=torch.float64, requires_grad=True)
    hull.distance(position, down).backward()
    assert position.grad[2] == pytest.approx(1.0, abs=0.05)  # rising moves the hand away as fast


def test_grasp_frame_inputs_follow_the_tcp_and_the_closing_direction():
    """A bar along image x, seen from a tcp above its +x end by a hand closing along image y: the new
    columns run along the closing direction (image y), so the bar runs down a column from the centre (new
    y = -image x), with its heights taken from the tcp's level."""
    import torch

    from grasp_cell.models.hand_quality_net import grasp_aligned

    cell, pixels = 0.00375, 64
    heights = torch.zeros(1, 1, pixels, pixels)
    heights[0, 0, 30:34, 20:44] = 0.02  # 24 cells along x, 4 along y, centred on the origin
    x_end = (44 - 0.5 - 0.5 * (pixels - 1)) * cell  # the bar's +x end
    position = torch.tensor([[x_end, 0.0, 0.05]])
    closing_along_y = torch.tensor(rotation_about_axis([0, 0, 1], 0.0))[None].float()  # hand y = image y
    image, rotation = grasp_aligned(heights, position, closing_along_y, cell)
    bar = image[0, 0] > -0.04  # 0.02 - 0.05 on the bar, -0.05 elsewhere
    rows, cols = np.nonzero(bar.numpy())
    assert abs(image[0, 0][bar].mean().item() + 0.03) < 1e-3
    assert cols.max() - cols.min() <= 5 and rows.max() - rows.min() >= 20  # the bar runs down a column...
    assert rows.min() >= pixels // 2 - 1  # ...from the centre (under the tcp) on
    assert torch.allclose(rotation, torch.tensor(rotation_about_axis([0, 0, 1], -math.pi / 2)).float()[None],
                          atol=1e-6)


def test_hand_frame_volume_is_the_depth_under_the_seen_surface_at_points_fixed_in_the_hand():
    """A 20 mm slab under a hand pointing straight down, its tcp 50 mm up and closing along image y: each layer
    of the grid (z along the approach, so down) lies at 50 mm - z, the slab's top 20 mm deep in the open;
    off the slab, the floor at 0. Turning the hand a quarter about its approach swaps which grid columns lie
    over the slab; raising it takes every unclipped depth up by as much."""
    import torch

    from grasp_cell.models.hand_quality_net import DEPTH_SCALE, hand_volume, hand_volume_points

    cell, pixels = 0.00375, 64
    heights = torch.zeros(1, 1, pixels, pixels)
    heights[0, 0, :, 32:] = 0.02  # the slab: image x > 0
    down = torch.tensor(rotation_about_axis([1.0, 0.0, 0.0], math.pi))[None].float()  # x along image x, y against
    points = hand_volume_points()
    volume = hand_volume(heights, torch.tensor([[0.0, 0.0, 0.05]]), down, cell)[0]
    z, x = points[:, 0, 0, 2], points[0, 0, :, 0]
    over_slab = (x > 0.005)[None, None, :]
    expected = torch.clamp((torch.where(over_slab, 0.02, 0.0) - (0.05 - z)[:, None, None]) / DEPTH_SCALE, -1, 1)
    near_edge = (x.abs() < 0.005)[None, None, :].expand_as(volume)
    assert torch.allclose(volume[~near_edge], expected.expand_as(volume)[~near_edge], atol=1e-5)

    quarter = down @ torch.tensor(rotation_about_axis([0.0, 0.0, 1.0], math.pi / 2)).float()  # hand x along image y
    turned = hand_volume(heights, torch.tensor([[0.0, 0.0, 0.05]]), quarter, cell)[0]
    y = points[0, :, 0, 1]
    assert torch.allclose(turned[:, y < -0.005].std(dim=(1, 2)), torch.zeros(len(z)), atol=1e-5)  # one side...
    assert (turned[:, y < -0.005, :].mean((1, 2)) > turned[:, y > 0.005, :].mean((1, 2)) + 0.1).any()  # ...the slab

    raised = hand_volume(heights, torch.tensor([[0.0, 0.0, 0.051]]), down, cell)[0]
    free = (volume.abs() < 0.9) & (raised.abs() < 0.9) & ~near_edge
    assert torch.allclose((volume - raised)[free], torch.full_like(volume[free], 0.001 / DEPTH_SCALE), atol=1e-4)


def test_symmetric_views_turn_the_image_and_the_pose_together(hand):
    """A quarter turn of the view is the lab's own image of the object turned a quarter about the vertical,
    with the grasp carried along; in every one of the 8 views a raised pixel stays under the same point of the
    pose, and the hand's frame stays a rotation with its approach carried along."""
    from grasp_cell.learn.hand_data import IMAGE_CELL, IMAGE_PIXELS
    from grasp_cell.learn.train_hand_quality import symmetric_views

    hand.set_object(PartSpec("box", (0.08, 0.05, 0.03), 0.1))  # tilted by R0: no symmetry of its own
    R0 = rotation_about_axis([1.0, 0.2, 0.0], 0.7)
    quarter = rotation_about_axis([0.0, 0.0, 1.0], math.pi / 2)
    heights, T_img_obj = hand.top_down_heights(R0, IMAGE_PIXELS, IMAGE_CELL)
    turned, T_turned_obj = hand.top_down_heights(quarter @ R0, IMAGE_PIXELS, IMAGE_CELL)
    T_img_tcp = T_img_obj * Transform(random_rotation(np.random.default_rng(0)), (0.01, -0.02, 0.03))
    image, position, rotation = symmetric_views(torch.from_numpy(heights)[None, None],
                                                torch.tensor(T_img_tcp.translation[None], dtype=torch.float32),
                                                torch.tensor(T_img_tcp.rotation[None], dtype=torch.float32),
                                                np.array([1]), np.array([False]))
    assert np.abs(image[0, 0].numpy() - turned).max() < 1e-4 and turned.max() > 0.01
    T_turned_tcp = T_turned_obj * T_img_obj.inverse() * T_img_tcp
    assert np.allclose(position[0].numpy(), T_turned_tcp.translation, atol=1e-6)
    assert np.allclose(rotation[0].numpy(), T_turned_tcp.rotation, atol=1e-6)

    centres = (np.arange(IMAGE_PIXELS) - 0.5 * (IMAGE_PIXELS - 1)) * IMAGE_CELL
    raised = torch.zeros(8, 1, IMAGE_PIXELS, IMAGE_PIXELS)
    raised[:, 0, 10, 50] = 0.02  # row 10 lies at y = centres[10], column 50 at x = centres[50]
    positions = torch.tensor([[centres[50], centres[10], 0.05]]).repeat(8, 1)
    rotations = torch.from_numpy(random_rotation(np.random.default_rng(1))).float().repeat(8, 1, 1)
    turns, mirrored = np.arange(8) % 4, np.arange(8) >= 4
    images, positions, rotations = symmetric_views(raised, positions, rotations, turns, mirrored)
    for view in range(8):
        row, col = np.argwhere(images[view, 0].numpy() > 0.01)[0]
        assert np.allclose(positions[view, :2].numpy(), (centres[col], centres[row]), atol=1e-6)
        assert np.isclose(float(torch.linalg.det(rotations[view])), 1.0, atol=1e-5)
    assert np.allclose(rotations[:, 2, 2].numpy(), rotations[0, 2, 2].item(), atol=1e-6)  # the approach's tilt
