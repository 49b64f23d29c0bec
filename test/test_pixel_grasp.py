"""Seed 003's pixel-level grasp net: loss, labels, augmentation, network shapes, trainer and GraspModel."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from grasp_cell.core import CameraIntrinsics, GripperKind
from grasp_cell.core.geometry import ParallelDepth
from grasp_cell.core.jaw import ANGLE_CLASSES, JawGeometry, closing_direction
from grasp_cell.core.transform import Transform
from grasp_cell.eval.synthetic import Part, PartShape, overhead_camera, render_scene
from grasp_cell.learn.pixel_data import (
    Augmentation,
    CropTransform,
    PdgMeta,
    PdgViews,
    PixelGraspDataset,
    enhanced_targets,
    list_shards,
    split_by_scene,
)
from grasp_cell.learn.train_pixel import main as train_main
from grasp_cell.models import Observation, available_models, create_model
from grasp_cell.models.base import MODELS_DIR_ENV
from grasp_cell.models.pixel_grasp import MODALITY_CHANNELS, PixelGraspModel, network_input
from grasp_cell.models.pixel_net import BACKBONES, PixelGraspNet, binary_focal_loss

torch.set_num_threads(1)
JAW = JawGeometry()
VIEW_SIZE = (48, 64)  # (H, W) of the tiny synthetic views


def test_focal_loss_matches_hand_computation():
    # p = sigmoid(0) = 0.5 against target 1: -log(0.5) * 0.5^2 * 0.95
    # p = sigmoid(ln 3) = 0.75 against target 0: -log(0.25) * 0.75^2 * 0.05
    logits = torch.tensor([0.0, math.log(3.0)])
    target = torch.tensor([1.0, 0.0])
    expected = (math.log(2.0) * 0.25 * 0.95 + math.log(4.0) * 0.5625 * 0.05) / 2
    assert binary_focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # a soft target (0.9, an enhanced label) counts as positive: alpha = 0.95
    soft = binary_focal_loss(torch.tensor([0.0]), torch.tensor([0.9])).item()
    assert soft == pytest.approx(-(0.9 * math.log(0.5) + 0.1 * math.log(0.5)) * 0.4**2 * 0.95, rel=1e-6)
    # saturated logits stay finite
    assert math.isfinite(binary_focal_loss(torch.tensor([1e4, -1e4]), torch.tensor([0.0, 1.0])).item())


def test_label_enhancement_fills_the_8_neighbourhood_without_lowering_labels():
    # two labels side by side with the same angle, one at the border
    quality, angle, width = enhanced_targets(
        np.array([2, 2, 0]), np.array([2, 3, 0]), np.array([4, 4, 7]), np.array([0.5, 0.5, 0.2]), (6, 7), 18
    )
    assert quality.shape == (1, 6, 7) and angle.shape == (18, 6, 7) and width.shape == (18, 6, 7)
    assert quality[0, 2, 2] == 1.0 and quality[0, 2, 3] == 1.0  # neighbours of each other: still 1
    assert angle[4, 2, 2] == 1.0 and angle[4, 2, 3] == 1.0
    for r, c in [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 4), (3, 1), (3, 2), (3, 3), (3, 4)]:
        assert quality[0, r, c] == pytest.approx(0.9)
        assert angle[4, r, c] == pytest.approx(0.9)
        assert width[4, r, c] == pytest.approx(0.5)
    assert quality[0, 0, 0] == 1.0 and angle[7, 0, 0] == 1.0 and angle[7, 1, 1] == pytest.approx(0.9)
    assert quality[0, 4, 2] == 0.0 and angle[4, 4, 2] == 0.0  # two rows away
    assert angle[5].sum() == 0.0  # other classes untouched
    assert set(np.unique(quality)) <= {0.0, np.float32(0.9), 1.0}
    assert np.all((width > 0) == (angle > 0))


@pytest.mark.parametrize("rotation_steps", [-3, -1, 0, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_augmented_labels_stay_on_the_grasp_line(rotation_steps, flip):
    transform = CropTransform((30.5, 21.5), 32, rotation_steps, flip, ANGLE_CLASSES)
    u, v, k = 33.0, 20.0, 5
    direction = closing_direction(k * math.pi / ANGLE_CLASSES)
    # the two fingertip points of the grasp, moved with the image
    ends_u, ends_v = transform.forward(u + np.array([-6, 6]) * direction[0], v + np.array([-6, 6]) * direction[1])
    centre_u, centre_v = transform.forward(u, v)
    assert np.mean(ends_u) == pytest.approx(centre_u) and np.mean(ends_v) == pytest.approx(centre_v)
    moved = np.array([ends_u[1] - ends_u[0], ends_v[1] - ends_v[0]]) / 12.0
    new_direction = closing_direction(int(transform.angle_class(k)) * math.pi / ANGLE_CLASSES)
    assert abs(moved @ new_direction) == pytest.approx(1.0, abs=1e-9)  # parallel (the jaw is symmetric)

    # the image moves the same way as the labels: a lone bright pixel lands where its label goes
    image = np.zeros(VIEW_SIZE, np.float32)
    image[int(v), int(u)] = 1.0
    warped = transform.warp(image)
    row, col = np.unravel_index(np.argmax(warped), warped.shape)
    assert math.hypot(row - centre_v, col - centre_u) < 1.0
    if rotation_steps == 0:  # whole-pixel shifts move pixels exactly
        assert warped[round(centre_v), round(centre_u)] == pytest.approx(1.0)


def test_scene_split_keeps_scenes_together():
    scene = np.repeat(np.arange(40), 5)
    train, val = split_by_scene(scene, 0.2)
    assert train.size + val.size == scene.size and val.size > 0 and train.size > 0
    assert not set(scene[train]) & set(scene[val])
    again = split_by_scene(scene[:100], 0.2)  # fewer scenes: the same ones go to validation
    assert set(scene[:100][again[1]]) == set(scene[val]) & set(range(20))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("modality", sorted(MODALITY_CHANNELS))
def test_network_outputs_at_input_resolution(backbone, modality):
    net = PixelGraspNet(backbone, MODALITY_CHANNELS[modality]).eval()
    with torch.inference_mode():
        output = net(torch.zeros(2, MODALITY_CHANNELS[modality], 32, 48))
    assert output.quality.shape == (2, 1, 32, 48)
    assert output.angle.shape == (2, ANGLE_CLASSES, 32, 48)
    assert output.width.shape == (2, ANGLE_CLASSES, 32, 48)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.zeros(1, MODALITY_CHANNELS[modality], 30, 48))


def write_dataset(folder, scene_count=4, views_per_scene=2, seed=0):
    """A PDG-format dataset of flat floors with one raised box per view, labelled across the box."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    jaw = {key: getattr(JAW, key) for key in ("finger_thickness", "finger_width", "finger_length", "max_opening")}
    meta = {"angle_classes": ANGLE_CLASSES, "downsample": 2, "jaw": jaw}
    (folder / "meta.json").write_text(json.dumps(meta))
    height, width = VIEW_SIZE
    count = scene_count * views_per_scene
    depth = np.full((count, height, width), 0.6, np.float32)
    grasps, offsets = [], [0]
    for i in range(count):
        v0, u0 = rng.integers(12, height - 20), rng.integers(12, width - 20)
        depth[i, v0 : v0 + 8, u0 : u0 + 8] = 0.56
        depth[i, rng.integers(0, height, 20), rng.integers(0, width, 20)] = np.nan
        grasps.append([[v0 + 4, u0 + 4, 0, 0.04], [v0 + 3, u0 + 4, 9, 0.04]])
        offsets.append(offsets[-1] + 2)
    arrays = {
        "depth": depth,
        "color": rng.integers(0, 255, (count, height, width, 3), dtype=np.uint8),
        "intrinsics": np.tile(np.float32([80.0, 80.0, (width - 1) / 2, (height - 1) / 2]), (count, 1)),
        "grasp_offsets": np.array(offsets, np.int64),
        "grasps": np.array(grasps, np.float32).reshape(-1, 4),
        "scene": np.repeat(np.arange(scene_count, dtype=np.int32), views_per_scene),
    }
    np.savez(folder / "shard_00000.npz", **arrays)
    (folder / "shard_00001.npz").write_bytes(b"PK\x03\x04 half written")  # a shard still being written
    return folder


def test_dataset_samples(tmp_path):
    folder = write_dataset(tmp_path / "pdg")
    with pytest.warns(UserWarning, match="incomplete"):
        assert [path.name for path in list_shards(folder)] == ["shard_00000.npz"]
    with pytest.warns(UserWarning):
        views = PdgViews.load(folder)
    meta = PdgMeta.from_folder(folder)
    dataset = PixelGraspDataset(views, np.arange(len(views)), meta, "rgbd", Augmentation(crop=32, max_shift=4))
    sample = dataset[0]
    assert sample["image"].shape == (4, 32, 32) and sample["quality"].shape == (1, 32, 32)
    assert sample["angle"].shape == (ANGLE_CLASSES, 32, 32)
    assert torch.isfinite(sample["image"]).all()
    assert abs(float(sample["image"][3].mean())) < 1e-5  # depth centred on its mean
    assert float(sample["quality"].max()) == 1.0
    assert float(sample["width"].max()) == pytest.approx(0.04 / JAW.max_opening)


def test_network_input_normalisation():
    depth = np.array([[0.5, np.nan], [0.7, 0.6]], np.float32)
    color = np.full((2, 2, 3), 255, np.uint8)
    image = network_input(depth, color, "rgbd")
    assert image.shape == (4, 2, 2) and np.isfinite(image).all()
    assert np.allclose(image[:3], 0.0) and image[3].mean() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="colour"):
        network_input(depth, None, "rgb")


def tower_scene(intrinsics):
    """Floor at 0.6 m with 4 cm tall towers about 2 cm square on a 5.5 cm grid, the roi around them."""
    depth = np.full((intrinsics.height, intrinsics.width), 0.6, np.float32)
    for v in range(16, 104, 10):
        for u in range(20, 140, 10):
            depth[v : v + 4, u : u + 4] = 0.56
    depth[10, 10] = np.nan
    return Observation(depth, intrinsics, roi=(16, 12, 144, 108))


def test_trainer_writes_weights_that_plan_parallel_grasps(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "pdg")
    out = tmp_path / "models"
    args = f"--data {folder} --backbone lite --modality depth --epochs 2 --batch-size 2 --out {out} "
    args = (args + f"--runs {tmp_path / 'runs'} --max-steps 3 --crop 32").split()
    with pytest.warns(UserWarning, match="incomplete"):
        train_main(args)
    run_dir = tmp_path / "runs" / "pdg-lite-depth"
    assert (run_dir / "last.pt").exists() and (run_dir / "history.csv").exists()
    assert (run_dir / "learning_curve.png").exists()
    card = yaml.safe_load((out / "pixel_lite_depth.yaml").read_text())
    assert card["settings"]["backbone"] == "lite" and card["settings"]["steps"] == 3
    assert card["data"]["views_val"] > 0 and card["data"]["scenes_train"] + card["data"]["scenes_val"] == 4
    assert (out / "pixel_lite_depth.pt").stat().st_size < 20e6
    with pytest.raises(FileExistsError):  # a finished run is not silently overwritten
        train_main(args)

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "empty"))
    assert not any(name.startswith("pixel_") for name in available_models())
    monkeypatch.setenv(MODELS_DIR_ENV, str(out))
    assert "pixel_lite_depth" in available_models()
    with pytest.raises(ValueError, match="parallel"):
        create_model("pixel_lite_depth", gripper="suction")
    model = create_model("pixel_lite_depth", gripper="parallel", min_quality=0.0)
    assert isinstance(model, PixelGraspModel) and model.gripper is GripperKind.PARALLEL

    intrinsics = CameraIntrinsics.from_vertical_fov(160, 120, 60.0)
    observation = tower_scene(intrinsics)
    grasps = model.plan(observation, max_grasps=20)
    assert 0 < len(grasps) <= 20
    assert [g.quality for g in grasps] == sorted((g.quality for g in grasps), reverse=True)
    u_min, v_min, u_max, v_max = observation.roi
    for grasp in grasps:
        u, v = grasp.pixel
        assert u_min <= u < u_max and v_min <= v < v_max
        assert grasp.gripper is GripperKind.PARALLEL and grasp.model == "pixel_lite_depth"
        assert 0.0 <= grasp.width <= JAW.max_opening
        assert np.allclose(grasp.approach, [0.0, 0.0, 1.0])  # eq. 9: approach along the camera z axis
        assert grasp.closing[2] == pytest.approx(0.0)
        # eq. 8: the surface point under the chosen pixel, moved down the camera z axis by d
        surface = intrinsics.deproject(u, v, observation.depth[v, u])
        assert np.allclose(grasp.position[:2], surface[:2])
        assert 0.005 <= grasp.position[2] - surface[2] <= JAW.finger_length - 0.005 + 1e-9
        assert grasp.position[2] <= 0.6 - model.tip_clearance + 1e-6  # fingertips stay clear of the floor


def test_plan_geometry_from_given_maps(monkeypatch):
    """Grasp depth, pose and skipping, with the net's maps replaced by known ones."""
    intrinsics = CameraIntrinsics.from_vertical_fov(160, 120, 60.0)
    depth = np.full((120, 160), 0.6, np.float32)
    depth[58:62, 78:82] = 0.56  # one 4 cm tall tower about 2 cm square
    observation = Observation(depth, intrinsics, roi=(16, 12, 144, 108))
    model = PixelGraspModel.untrained("lite", min_quality=0.2)
    # the net sees the roi grown by model.context net pixels (here: the whole image), at half resolution;
    # net pixel (row, col) shows full-resolution pixel (top + 2 row + 1, left + 2 col + 1)
    left, top = max(16 - 2 * model.context, 0), max(12 - 2 * model.context, 0)
    maps = {}

    def given_maps(image):
        height, width = image.shape[1:]
        quality = np.zeros((height, width), np.float32)
        for (u, v), value in {
            (79, 59): 0.9,  # on the tower
            (71, 59): 0.8,  # on the floor beside it: the fingers would land on the tower
            (39, 31): 0.7,  # on the open floor: no depth to grasp at
            (11, 11): 0.95,  # outside the roi
            (121, 91): 0.1,  # below min_quality
        }.items():
            quality[(v - top - 1) // 2, (u - left - 1) // 2] = value
        quality *= maps.get("scale", 1.0)
        angle = np.zeros((ANGLE_CLASSES, height, width), np.float32)
        angle[0] = 0.5  # closing along the image u axis
        return quality, angle, np.full((ANGLE_CLASSES, height, width), 0.5, np.float32)

    monkeypatch.setattr(model, "_predict", given_maps)

    grasps = model.plan(observation, max_grasps=10)
    assert len(grasps) == 1
    grasp = grasps[0]
    assert grasp.pixel == (79, 59) and grasp.quality == pytest.approx(0.9 * 0.5)  # Qp x Qθ
    assert grasp.width == pytest.approx(0.5 * JAW.max_opening)
    assert np.allclose(grasp.closing, [1.0, 0.0, 0.0]) and np.allclose(grasp.approach, [0.0, 0.0, 1.0])
    # fingertips 6 mm (the default clearance) above the floor beside the tower: d = 0.6 - 0.006 - 0.56
    expected = intrinsics.deproject(79, 59, 0.56) + (0.0, 0.0, 0.034)
    assert np.allclose(grasp.position, expected, atol=1e-6)

    maps["scale"] = 0.2  # nothing reaches min_quality
    assert model.plan(observation) == []


def lying_cylinder_scene(neighbour_height: float):
    """A 32 mm cylinder lying along the image v axis on a floor 0.6 m away (320 x 240, 1.4-2.9 mm per pixel),
    a block ``neighbour_height`` tall beside it where the right finger lands; its roi, and the pixel on top."""
    intrinsics = CameraIntrinsics.from_vertical_fov(320, 240, 60.0)
    depth = np.full((240, 320), 0.6, np.float32)
    u0, v0, radius = 161, 121, 0.016
    u = np.arange(320)
    x = (u - intrinsics.cx) * 0.584 / intrinsics.fx - (u0 - intrinsics.cx) * 0.584 / intrinsics.fx  # [m] across
    on = np.abs(x) < radius
    height = radius + np.sqrt(np.clip(radius**2 - x**2, 0.0, None))
    depth[80:160, on] = 0.6 - height[on]
    block = (x > 0.026) & (x < 0.045)
    depth[80:160, block] = 0.6 - neighbour_height
    return Observation(depth, intrinsics, roi=(60, 40, 260, 200)), (u0, v0)


def one_grasp_maps(model, observation, pixel, width):
    """Stand-in net output with one grasp: quality 0.9 at full-resolution ``pixel``, angle class 0 (closing
    along u) at 0.5, opening ``width`` x L4 everywhere."""
    u_min, v_min = observation.roi[:2]
    left, top = max(u_min - 2 * model.context, 0), max(v_min - 2 * model.context, 0)

    def given_maps(image):
        height, columns = image.shape[1:]
        quality = np.zeros((height, columns), np.float32)
        quality[(pixel[1] - top - 1) // 2, (pixel[0] - left - 1) // 2] = 0.9
        angle = np.zeros((ANGLE_CLASSES, height, columns), np.float32)
        angle[0] = 0.5
        return quality, angle, np.full((ANGLE_CLASSES, height, columns), width, np.float32)

    return given_maps


@pytest.mark.parametrize("neighbour_height, held", [(0.006, True), (0.018, False)])
def test_grasps_too_shallow_to_hold_a_round_part_are_dropped(monkeypatch, neighbour_height, held):
    """The block caps the fingertips 6 mm above itself: at 12 mm they close below the cylinder's middle
    (contacts in the friction cone); at 24 mm, 8 mm below its top, they would squeeze it out upwards."""
    observation, (u0, v0) = lying_cylinder_scene(neighbour_height)
    model = PixelGraspModel.untrained("lite", min_quality=0.2)
    # one grasp closing along u, across the cylinder, 47 mm open
    monkeypatch.setattr(model, "_predict", one_grasp_maps(model, observation, (u0, v0), width=0.55))
    grasps = model.plan(observation, max_grasps=5)
    assert len(grasps) == (1 if held else 0)
    # without the friction-cone check the shallow grasp would be returned: the depth alone allows it
    monkeypatch.setattr(model, "_contacts_in_cone", lambda *args: np.ones(args[2].size, bool))
    assert len(model.plan(observation, max_grasps=5)) == 1


def handle_over_the_finger_scene(with_handle: bool):
    """A 30 mm box 20 mm tall 9 cm off the optical axis, 0.6 m under the camera; optionally a bar floating
    70-80 mm above the floor just outside the box (a mallet's handle held up by its head), over where the
    right finger of a grasp closing along x goes down. The camera sees the floor under the bar's inner
    edge, so in the image the finger's footprint shows floor: the bar's ray leans outwards by 12 degrees."""
    height = 0.020
    parts = [Part(1, PartShape.BOX, (0.03, 0.03, height), Transform(translation=(0.09, 0.0, 0.5 * height)))]
    if with_handle:
        parts.append(Part(2, PartShape.BOX, (0.04, 0.03, 0.01), Transform(translation=(0.135, 0.0, 0.075))))
    scene = render_scene(parts, CameraIntrinsics.default(), overhead_camera(0.6))
    return Observation(scene.depth, scene.intrinsics, roi=scene.roi), scene


def test_parallel_depth_shows_things_where_they_stand():
    observation, scene = handle_over_the_finger_scene(with_handle=True)
    parallel = ParallelDepth.from_depth(observation.depth, observation.intrinsics)
    x, y = np.array([0.09, 0.12, 0.15, 0.0, -0.1]), np.zeros(5)
    assert np.allclose(parallel.at(x, y), [0.58, 0.52, 0.52, 0.6, 0.6], atol=0.001)
    # the pinhole image at the box top's depth shows floor where the handle stands
    u, v = observation.intrinsics.project([[0.118, 0.0, 0.58]])[0]
    assert observation.depth[int(round(v)), int(round(u))] == pytest.approx(0.6, abs=1e-3)
    # a box outside the image holds nothing; an empty image gives an all-unseen grid
    inside = (scene.roi[0], scene.roi[1], scene.roi[2], scene.roi[3])
    cropped = ParallelDepth.from_depth(observation.depth, observation.intrinsics, inside)
    assert np.isnan(cropped.at(np.array([0.5]), np.array([0.0]))).all()
    empty = ParallelDepth.from_depth(np.full_like(observation.depth, np.nan), observation.intrinsics)
    assert np.isnan(empty.at(x, y)).all()
    # a flat floor leaves no empty cell between its points
    floor = ParallelDepth.from_depth(np.full_like(observation.depth, 0.6), observation.intrinsics)
    assert np.isfinite(floor.depth[1:-1, 1:-1]).all()


@pytest.mark.parametrize("with_handle", [False, True])
def test_fingers_are_checked_where_they_go_down_not_along_leaning_rays(monkeypatch, with_handle):
    observation, _ = handle_over_the_finger_scene(with_handle)
    intrinsics = observation.intrinsics
    u0, v0 = (int(round(c)) for c in intrinsics.project([[0.09, 0.0, 0.58]])[0])
    model = PixelGraspModel.untrained("lite", min_quality=0.2)
    # one grasp closing along x, towards the handle, 42.5 mm open
    monkeypatch.setattr(model, "_predict", one_grasp_maps(model, observation, (u0, v0), width=0.5))
    grasps = model.plan(observation, max_grasps=5)
    assert len(grasps) == (0 if with_handle else 1)


def teardown_module():
    from grasp_cell.models.pixel_grasp import register_pixel_models

    register_pixel_models()  # forget the test's models folder: the registry lists the package's weights again
