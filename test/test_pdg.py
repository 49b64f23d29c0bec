"""PDG-Generation (seed 003): labels from parallel depth images, camera poses, depth noise, the dataset command."""

import json
import math

import numpy as np
import pytest

from grasp_cell.core.jaw import class_of_angle
from grasp_cell.core.transform import Transform
from grasp_cell.learn import pdg_dataset
from grasp_cell.learn.pdg import PdgSettings, label_view, offset_camera_pose, render_parallel
from grasp_cell.sim.camera import realistic_depth_noise, render
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.objects import object_set, scene_specs
from grasp_cell.sim.parts import PartSpec
from grasp_cell.sim.world import SimWorld

# the cell camera looks straight down with world +y up in the image: closing along world x is angle 0,
# along world y is 90 degrees
ALONG_X = 0
ALONG_Y = int(class_of_angle(math.pi / 2))


@pytest.fixture(scope="module")
def world():
    with SimWorld(CellConfig()) as world:
        yield world


def labels_of(world, bodies):
    intrinsics = world.config.camera.intrinsics.scaled(320, 240)
    view = render(world.client, intrinsics, world.T_world_cam)
    inner_x, inner_y = world.config.bin.inner_size
    corners = np.array(
        [
            [sx * inner_x / 2, sy * inner_y / 2, z]
            for sx in (-1, 1)
            for sy in (-1, 1)
            for z in (world.bin_floor_z, world.bin_top_z)
        ]
    )
    parallel = render_parallel(world.client, world.T_world_cam, corners, PdgSettings())
    grasps = label_view(view.depth, view.segmentation, intrinsics, parallel, bodies)
    return grasps, view.segmentation


def place(world, size, x, y):
    half_height = size[2] / 2
    return world.add_part(PartSpec("box", size, 0.05), Transform(np.eye(3), [x, y, world.bin_floor_z + half_height]))


def test_a_bar_is_labelled_across_its_short_side_only(world):
    world.clear_parts()
    bar = place(world, (0.10, 0.02, 0.03), 0.0, 0.0)  # 100 mm long: too long for the 85 mm jaw
    grasps, segmentation = labels_of(world, [bar])
    angles = set(grasps[:, 2].astype(int))
    assert ALONG_Y in angles
    assert ALONG_X not in angles
    across = grasps[grasps[:, 2] == ALONG_Y]
    # the opening is the bar's 20 mm plus the 5 mm tolerance, wider off the centre line
    assert across[:, 3].min() == pytest.approx(0.025, abs=0.003)
    assert (across[:, 3] <= 0.085).all()
    # every labelled pixel lies on the bar
    assert (segmentation[across[:, 0].astype(int), across[:, 1].astype(int)] == bar).all()
    # 45 degrees across a 20 mm bar: the contact edges are tilted far outside the mu = 0.2 friction cone
    assert not np.isin(grasps[:, 2], [4, 5, 13, 14]).any()


def test_a_touching_neighbour_or_wall_blocks_the_fingers(world):
    world.clear_parts()
    inner_y = world.config.bin.inner_size[1]
    left = place(world, (0.03, 0.02, 0.03), -0.05, 0.0)
    right = place(world, (0.03, 0.02, 0.03), -0.05, 0.0205)  # touching along y
    against_wall = place(world, (0.03, 0.02, 0.03), 0.08, inner_y / 2 - 0.0105)
    free = place(world, (0.03, 0.02, 0.03), 0.08, -0.05)
    grasps, segmentation = labels_of(world, [left, right, against_wall, free])
    owner = segmentation[grasps[:, 0].astype(int), grasps[:, 1].astype(int)]
    for body in (left, right, against_wall):
        assert not ((owner == body) & (grasps[:, 2] == ALONG_Y)).any(), "a finger would land on the neighbour"
        assert ((owner == body) & (grasps[:, 2] == ALONG_X)).any()
    assert ((owner == free) & (grasps[:, 2] == ALONG_Y)).any()


def test_offset_camera_pose_keeps_the_tray_centre_on_the_optical_axis():
    centre = Transform(np.eye(3), [0.1, -0.05, 0.01])
    rng = np.random.default_rng(3)
    for _ in range(20):
        T_world_cam = offset_camera_pose(centre, 0.6, 0.08, rng)
        in_camera = T_world_cam.inverse().apply(centre.translation)
        assert in_camera[:2] == pytest.approx([0.0, 0.0], abs=1e-9)
        offset = T_world_cam.translation - centre.translation
        assert offset[2] == pytest.approx(0.6)
        assert np.abs(offset[:2]).max() <= 0.08


def test_realistic_noise_drops_edges_more_than_flat_areas():
    depth = np.full((120, 160), 0.6, np.float32)
    depth[40:80, 60:100] = 0.55  # a box: a 5 cm step around it
    rng = np.random.default_rng(0)
    edge = np.zeros_like(depth, bool)
    edge[39:41, 60:100] = edge[79:81, 60:100] = True
    dropped_edge = dropped_flat = 0.0
    for _ in range(10):
        noisy = realistic_depth_noise(depth, rng, downsample=(1, 1))
        dropped_edge += np.isnan(noisy[edge]).mean()
        dropped_flat += np.isnan(noisy[~edge]).mean()
    assert dropped_edge / 10 > 0.3
    assert dropped_flat / 10 < 0.01
    noisy = realistic_depth_noise(depth, rng, gaussian_std=(0.002, 0.002), downsample=(1, 1))
    assert np.nanstd(noisy[50:70, 70:90]) == pytest.approx(0.002, rel=0.3)


def test_object_sets_are_fixed_and_disjoint_in_families():
    seen, novel = object_set("seen"), object_set("novel")
    assert object_set("seen") is seen
    assert not any(spec.name.endswith(("_frame", "_mallet")) for spec in seen)
    assert any(spec.name.endswith("_frame") for spec in novel)
    assert {spec.name for spec in seen}.isdisjoint(spec.name for spec in novel)
    picked = scene_specs("seen", 15, np.random.default_rng(0))
    assert len({spec.name for spec in picked}) == 15


def test_dataset_command_writes_a_shard_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(pdg_dataset, "VIEWS_PER_SCENE", 2)
    out = tmp_path / "pdg"
    assert pdg_dataset.main(["--out", str(out), "--scenes", "1", "--scenes-per-shard", "1", "--workers", "1"]) == 0
    shard = np.load(out / "shard_00000.npz")
    assert shard["depth"].shape == (2, 240, 320)
    assert shard["color"].shape == (2, 240, 320, 3)
    offsets = shard["grasp_offsets"]
    assert offsets[0] == 0 and offsets[-1] == len(shard["grasps"]) > 0
    v, u, k, width = shard["grasps"].T
    assert (0 <= k).all() and (k < 18).all() and (width <= 0.085).all()
    assert np.isfinite(shard["depth"][0][v[: offsets[1]].astype(int), u[: offsets[1]].astype(int)]).mean() > 0.8
    meta = json.loads((out / "meta.json").read_text())
    assert meta["angle_classes"] == 18 and meta["jaw"]["max_opening"] == 0.085
    before = (out / "shard_00000.npz").stat().st_mtime_ns
    assert pdg_dataset.main(["--out", str(out), "--scenes", "1", "--scenes-per-shard", "1", "--workers", "1"]) == 0
    assert (out / "shard_00000.npz").stat().st_mtime_ns == before
