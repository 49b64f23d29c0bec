"""The non-learned models (baseline suction / parallel jaw, random) on synthetic bin scenes."""

import math

import numpy as np
import pytest

from grasp_cell.core import CameraIntrinsics, GripperKind, Transform
from grasp_cell.core.geometry import downsample_depth, fit_floor_plane, fit_local_planes
from grasp_cell.core.transform import rotation_about_axis
from grasp_cell.eval.latency import make_observations, measure_latency
from grasp_cell.eval.synthetic import (
    FLOOR_ID,
    BinGeometry,
    Part,
    PartShape,
    add_sensor_noise,
    overhead_camera,
    random_scene,
    render_scene,
)
from grasp_cell.models import Observation, available_models, create_model

INTRINSICS = CameraIntrinsics.default()
MAX_OPENING = 0.085  # [m] the baseline's default


def observe(scene, depth=None, roi="scene"):
    depth = scene.depth if depth is None else depth
    return Observation(depth, scene.intrinsics, roi=scene.roi if roi == "scene" else roi)


def part_at(scene, grasp):
    u, v = grasp.pixel
    return int(scene.part_id[v, u])


def tilt_deg(grasp):
    return math.degrees(math.acos(np.clip(grasp.approach @ (0.0, 0.0, 1.0), -1.0, 1.0)))


@pytest.fixture(scope="module")
def cluttered():
    """20 cylinders and boxes, some stacked, with sensor noise and missing data."""
    rng = np.random.default_rng(7)
    scene = random_scene(rng, 20, INTRINSICS)
    return scene, add_sensor_noise(scene.depth, rng)


@pytest.fixture(scope="module")
def flat_tops():
    """Boxes and standing cylinders apart from each other on the floor: every top face is flat and level."""
    rng = np.random.default_rng(3)
    shapes = (PartShape.BOX, PartShape.CYLINDER)
    scene = random_scene(rng, 12, INTRINSICS, shapes=shapes, standing_fraction=1.0, pile=False)
    return scene, add_sensor_noise(scene.depth, rng, hole_count=0)


def single_part_scene(part):
    return render_scene([part], INTRINSICS, overhead_camera(0.7))


def lying_cylinder(yaw_deg, diameter=0.019, length=0.0317):
    rotation = rotation_about_axis((0, 0, 1), math.radians(yaw_deg)) @ rotation_about_axis((1, 0, 0), math.pi / 2)
    return Part(1, PartShape.CYLINDER, (diameter, diameter, length), Transform(rotation, [0.03, -0.02, diameter / 2]))


# registry


def test_registry_finds_the_baselines_by_name():
    assert {"baseline", "random"} <= set(available_models())
    assert create_model("baseline").gripper is GripperKind.SUCTION
    assert create_model("baseline", gripper="parallel").gripper is GripperKind.PARALLEL
    assert create_model("random", gripper="parallel", seed=0).gripper is GripperKind.PARALLEL
    with pytest.raises(ValueError, match="baseline.*random"):
        create_model("no_such_model")


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="three_finger"):
        create_model("baseline", gripper="three_finger")
    with pytest.raises(ValueError, match="unknown gripper"):
        create_model("baseline", gripper="magnet")
    with pytest.raises(ValueError, match="min_quality"):
        create_model("baseline", min_quality=1.5)
    with pytest.raises(TypeError):
        create_model("baseline", cup_diametre=0.02)


# synthetic scenes and geometry helpers


def test_synthetic_scene_renders_parts_where_they_are():
    part = lying_cylinder(0.0)
    scene = single_part_scene(part)
    centre = scene.T_cam_part(part).translation
    u, v = np.rint(INTRINSICS.project(centre)).astype(int)
    assert scene.part_id[v, u] == 1
    assert scene.depth[v, u] == pytest.approx(centre[2] - part.radius, abs=1e-3)  # the cylinder's top line
    u_min, v_min, u_max, v_max = scene.roi
    assert scene.part_id[v_min + 2, u_min + 2] == FLOOR_ID
    assert scene.depth[v_min + 2, u_min + 2] == pytest.approx(0.7, abs=1e-4)
    assert (scene.part_id[:, : u_min - 3] < FLOOR_ID).all()  # walls and table outside the roi


def test_local_planes_recover_a_tilted_plane_and_its_flatness():
    depth = np.full((60, 80), np.nan, np.float32)
    v, u = np.mgrid[0:60, 0:80]
    # plane z = 0.6 + 0.3 x: along each ray z = 0.6 / (1 - 0.3 x/z)
    ray_x = (u - INTRINSICS.cx) / INTRINSICS.fx
    depth[:] = 0.6 / (1.0 - 0.3 * ray_x)
    intrinsics = CameraIntrinsics(80, 60, INTRINSICS.fx, INTRINSICS.fy, INTRINSICS.cx, INTRINSICS.cy)
    planes = fit_local_planes(intrinsics.point_map(depth), 5)
    expected = np.array([0.3, 0.0, -1.0]) / math.hypot(0.3, 1.0)
    np.testing.assert_allclose(planes.normal[30, 40], expected, atol=1e-3)
    np.testing.assert_allclose(planes.depth[10:50, 10:70], depth[10:50, 10:70], atol=1e-5)
    assert planes.rms[10:50, 10:70].max() < 1e-4
    assert downsample_depth(depth, 2).shape == (30, 40)
    np.testing.assert_allclose(fit_floor_plane(depth), depth, rtol=1e-4)


# suction


def test_suction_grasps_land_on_parts_sorted_and_spread(cluttered):
    scene, depth = cluttered
    model = create_model("baseline")
    grasps = model.plan(observe(scene, depth), max_grasps=10)
    assert len(grasps) >= 5
    assert all(part_at(scene, grasp) > 0 for grasp in grasps), [part_at(scene, g) for g in grasps]
    qualities = [grasp.quality for grasp in grasps]
    assert qualities == sorted(qualities, reverse=True)
    assert all(model.config.min_quality <= q <= 1.0 for q in qualities)
    assert all(grasp.gripper is GripperKind.SUCTION and grasp.model == "baseline" for grasp in grasps)
    # approach points away from the camera, into the part; the point lies on the seen surface
    for grasp in grasps:
        assert grasp.approach[2] > 0.5
        u, v = grasp.pixel
        assert abs(grasp.position[2] - np.nanmedian(depth[v - 1 : v + 2, u - 1 : u + 2])) < 0.004
    # non-maximum suppression: about one part apart
    pixels = np.array([grasp.pixel for grasp in grasps], float)
    spacing = model.config.min_spacing * INTRINSICS.fx / np.nanmax(depth)
    gaps = np.linalg.norm(pixels[:, None] - pixels[None], axis=-1) + np.eye(len(pixels)) * 1e9
    assert gaps.min() >= spacing - 2.0  # block centres round to full-resolution pixels


@pytest.mark.parametrize("downsample", [1, 2])
def test_suction_approaches_flat_tops_from_above(flat_tops, downsample):
    scene, depth = flat_tops
    grasps = create_model("baseline", downsample=downsample).plan(observe(scene, depth), max_grasps=10)
    assert len(grasps) >= 6
    assert all(part_at(scene, grasp) > 0 for grasp in grasps)
    assert max(tilt_deg(grasp) for grasp in grasps) < 30.0


def test_suction_follows_the_normal_of_a_tilted_face():
    tilt = math.radians(25.0)
    part = Part(1, PartShape.BOX, (0.05, 0.05, 0.01), Transform(rotation_about_axis((1, 0, 0), tilt), [0.0, 0.0, 0.03]))
    scene = single_part_scene(part)
    grasps = create_model("baseline").plan(observe(scene), max_grasps=3)
    assert grasps and part_at(scene, grasps[0]) == 1
    face_normal = scene.T_cam_part(part).rotation[:, 2]  # the box's top face, towards the camera
    angle = math.degrees(math.acos(np.clip(grasps[0].approach @ -face_normal, -1.0, 1.0)))
    assert angle < 3.0
    assert tilt_deg(grasps[0]) == pytest.approx(25.0, abs=3.0)


def test_min_quality_only_cuts_the_tail(cluttered):
    scene, depth = cluttered
    observation = observe(scene, depth)
    for gripper in ("suction", "parallel"):
        everything = create_model("baseline", gripper=gripper, min_quality=0.0).plan(observation, max_grasps=100)
        strict = create_model("baseline", gripper=gripper, min_quality=0.5).plan(observation, max_grasps=100)
        assert all(grasp.quality >= 0.5 for grasp in strict)
        expected = [grasp for grasp in everything if grasp.quality >= 0.5]
        assert [g.pixel for g in strict] == [g.pixel for g in expected]


# parallel jaw


@pytest.mark.parametrize("downsample", [1, 2])
@pytest.mark.parametrize("yaw_deg", [0.0, 30.0, 75.0])
def test_parallel_straddles_a_lying_cylinder_across_its_axis(yaw_deg, downsample):
    part = lying_cylinder(yaw_deg)
    scene = single_part_scene(part)
    depth = add_sensor_noise(scene.depth, np.random.default_rng(1), hole_count=0)
    model = create_model("baseline", gripper="parallel", downsample=downsample)
    grasps = model.plan(observe(scene, depth), max_grasps=5)
    assert grasps
    best = grasps[0]
    T_cam_part = scene.T_cam_part(part)
    axis = T_cam_part.rotation[:, 2]
    assert best.gripper is GripperKind.PARALLEL
    assert part_at(scene, best) == 1
    assert abs(best.closing @ axis) < math.sin(math.radians(25.0))  # closing within 25 deg of square to the axis
    assert part.extents[0] <= best.width <= MAX_OPENING
    # the grasp point lies on the axis, within a few mm, and below the top
    offset = best.position - T_cam_part.translation
    assert np.linalg.norm(offset - (offset @ axis) * axis) < 0.004
    assert abs(offset @ axis) < 0.005
    assert best.approach == pytest.approx([0.0, 0.0, 1.0])


def test_parallel_grasps_in_clutter_fit_the_jaw(cluttered):
    scene, depth = cluttered
    grasps = create_model("baseline", gripper="parallel").plan(observe(scene, depth), max_grasps=10)
    assert len(grasps) >= 5
    assert all(part_at(scene, grasp) > 0 for grasp in grasps)
    assert all(0.0 < grasp.width <= MAX_OPENING for grasp in grasps)
    qualities = [grasp.quality for grasp in grasps]
    assert qualities == sorted(qualities, reverse=True) and all(0.0 <= q <= 1.0 for q in qualities)


def test_parallel_grasps_in_clutter_pinch_one_part_each(cluttered):
    scene, depth = cluttered
    grasps = create_model("baseline", gripper="parallel").plan(observe(scene, depth), max_grasps=10)
    assert grasps
    for grasp in grasps:
        first, second = pad_contacts(scene, grasp)
        assert first == second == part_at(scene, grasp), (grasp.pixel, first, second)


FINGER_THICKNESS, FINGER_WIDTH, TIP_BELOW_TCP = 0.010, 0.020, 0.005  # the simulated jaw's fingers


def bin_point(scene, point_cam):
    return scene.T_cam_bin.inverse().apply(point_cam)


def pad_contacts(scene, grasp):
    """Ground truth: the part each finger pad touches first as the jaw closes from ``grasp.width`` (0: none).

    A pad is the finger's inner face, FINGER_WIDTH wide, at the fingertips' depth; it meets whatever stands
    above that depth (a straight-down camera sees a part's full outline)."""
    tip_depth = grasp.position[2] + TIP_BELOW_TCP
    centre = np.array([grasp.position[0], grasp.position[1], tip_depth])
    across = np.cross([0.0, 0.0, 1.0], grasp.closing)
    travel = np.arange(0.5 * grasp.width, -1e-9, -0.0005)  # from the open pad inwards
    offsets = np.linspace(-0.5, 0.5, 9) * FINGER_WIDTH
    contacts = []
    for sign in (1.0, -1.0):
        points = centre + sign * travel[:, None, None] * grasp.closing + offsets[None, :, None] * across
        u, v = np.rint(INTRINSICS.project(points.reshape(-1, 3))).astype(int).T
        ids = scene.part_id[v, u].reshape(points.shape[:2])
        touched = (scene.depth[v, u].reshape(points.shape[:2]) < tip_depth) & (ids > 0)
        rows = np.nonzero(touched.any(axis=1))[0]
        contacts.append(int(ids[rows[0]][touched[rows[0]]][0]) if rows.size else 0)
    return tuple(contacts)


def lying(part_id, shape, diameter, length, x, y=0.0):
    """A cylinder or capsule lying on the floor with its axis along the bin's y axis."""
    rotation = rotation_about_axis((1, 0, 0), math.pi / 2)
    return Part(part_id, shape, (diameter, diameter, length), Transform(rotation, [x, y, diameter / 2]))


def standing_cylinder(part_id, diameter, length, x, y=0.0):
    return Part(part_id, PartShape.CYLINDER, (diameter, diameter, length), Transform(np.eye(3), [x, y, length / 2]))


TOUCHING = {
    # a cylinder and a lower capsule against its side: a jaw closing across both pinches the two
    "cylinder_and_capsule": [
        lying(1, PartShape.CYLINDER, 0.0305, 0.0275, 0.0),
        lying(2, PartShape.CAPSULE, 0.015, 0.0335, 0.01525 + 0.0075),
    ],
    # two standing cylinders of the same height: no step between them, just a gap that narrows to nothing
    "standing_pair": [standing_cylinder(1, 0.030, 0.028, -0.015), standing_cylinder(2, 0.030, 0.028, 0.015)],
    # a lying cylinder against a standing one, their tops 1.5 mm apart in height
    "lying_and_standing": [
        lying(1, PartShape.CYLINDER, 0.029, 0.028, -0.0145),
        standing_cylinder(2, 0.0305, 0.0275, 0.0145 + 0.01525),
    ],
}


@pytest.mark.parametrize("downsample", [1, 2])
@pytest.mark.parametrize("pair", sorted(TOUCHING))
def test_parallel_pinches_one_of_two_touching_parts(pair, downsample):
    scene = render_scene(TOUCHING[pair], INTRINSICS, overhead_camera(0.7))
    depth = add_sensor_noise(scene.depth, np.random.default_rng(4), hole_count=0)
    grasps = create_model("baseline", gripper="parallel", downsample=downsample).plan(observe(scene, depth), 5)
    assert grasps  # each part has free sides
    for grasp in grasps:
        first, second = pad_contacts(scene, grasp)
        assert first == second == part_at(scene, grasp), (grasp.pixel, first, second)


def test_parallel_reaches_a_part_against_the_bin_wall():
    """Parallel to the wall, the fingers fit between the part's ends and the wall; the bin's walls rise straight
    up from the roi's edges, so above the floor the part and the fingers show outside the roi's pixel box."""
    geometry = BinGeometry()
    diameter = 0.024
    part = lying(1, PartShape.CYLINDER, diameter, 0.030, 0.5 * geometry.inner_length - 0.5 * diameter - 0.0005)
    scene = render_scene([part], INTRINSICS, overhead_camera(0.7))
    depth = add_sensor_noise(scene.depth, np.random.default_rng(5), hole_count=0)
    grasps = create_model("baseline", gripper="parallel").plan(observe(scene, depth), max_grasps=3)
    assert grasps and part_at(scene, grasps[0]) == 1
    best = grasps[0]
    wall_direction = scene.T_cam_bin.rotation[:, 1]  # the bin's y axis, along the wall
    assert abs(best.closing @ wall_direction) > math.cos(math.radians(25.0))
    assert pad_contacts(scene, best) == (1, 1)
    # the fingers' outer corners stay inside the walls
    tip = best.position + np.array([0.0, 0.0, TIP_BELOW_TCP])
    across = np.cross([0.0, 0.0, 1.0], best.closing)
    reach = 0.5 * best.width + FINGER_THICKNESS
    for along in (1.0, -1.0):
        for side in (1.0, -1.0):
            x, y, _ = bin_point(scene, tip + along * reach * best.closing + side * 0.5 * FINGER_WIDTH * across)
            assert abs(x) < 0.5 * geometry.inner_length and abs(y) < 0.5 * geometry.inner_width


def test_parallel_fingertips_stay_clear_of_the_floor():
    part = Part(1, PartShape.BOX, (0.030, 0.025, 0.015), Transform(np.eye(3), [0.0, 0.0, 0.0075]))
    scene = render_scene([part], INTRINSICS, overhead_camera(0.7))
    model = create_model("baseline", gripper="parallel")
    grasps = model.plan(observe(scene), max_grasps=3)
    assert grasps and part_at(scene, grasps[0]) == 1
    for grasp in grasps:
        tip_height = bin_point(scene, grasp.position + np.array([0.0, 0.0, TIP_BELOW_TCP]))[2]
        assert tip_height >= model.config.floor_clearance - 0.001
        assert pad_contacts(scene, grasp) == (1, 1)


def test_parallel_pinches_a_sphere_no_higher_than_its_widest():
    """A lower box beside the sphere would keep the fingertips above the sphere's equator on that side: the
    pads would meet its upper flank with their edges, and it squeezes out. Across the other way they reach."""
    diameter = 0.025
    sphere = Part(1, PartShape.SPHERE, (diameter,) * 3, Transform(np.eye(3), [0.0, 0.0, diameter / 2]))
    beside = [diameter / 2 + 0.006 + 0.020, 0.0, 0.009]  # 6 mm from the sphere
    box = Part(2, PartShape.BOX, (0.040, 0.040, 0.018), Transform(np.eye(3), beside))
    scene = render_scene([sphere, box], INTRINSICS, overhead_camera(0.7))
    grasps = create_model("baseline", gripper="parallel").plan(observe(scene), max_grasps=5)
    on_sphere = [grasp for grasp in grasps if part_at(scene, grasp) == 1]
    assert on_sphere
    for grasp in on_sphere:
        tip_height = bin_point(scene, grasp.position + np.array([0.0, 0.0, TIP_BELOW_TCP]))[2]
        assert tip_height <= diameter / 2 + 0.002
        assert pad_contacts(scene, grasp) == (1, 1)


# what may never be grasped


@pytest.mark.parametrize("gripper", ["suction", "parallel"])
def test_an_empty_bin_gives_no_grasp(gripper):
    scene = render_scene([], INTRINSICS, overhead_camera(0.7))
    depth = add_sensor_noise(scene.depth, np.random.default_rng(2))
    assert create_model("baseline", gripper=gripper).plan(observe(scene, depth)) == []
    assert create_model("baseline", gripper=gripper, min_quality=0.0).plan(observe(scene, depth)) == []


@pytest.mark.parametrize("missing", [np.nan, 0.0])
@pytest.mark.parametrize("gripper", ["suction", "parallel"])
def test_missing_data_is_never_grasped(cluttered, gripper, missing):
    scene, depth = cluttered
    u_min, v_min, u_max, v_max = scene.roi
    holed = depth.copy()
    hole = (slice(v_min, (v_min + v_max) // 2), slice(u_min, (u_min + u_max) // 2))  # a quarter of the bin
    holed[hole] = missing
    model = create_model("baseline", gripper=gripper)
    grasps = model.plan(observe(scene, holed), max_grasps=20)
    assert grasps  # the rest of the bin still has parts
    for grasp in grasps:
        u, v = grasp.pixel
        assert holed[v, u] > 0
        assert not (hole[0].start - 2 <= v < hole[0].stop + 2 and hole[1].start - 2 <= u < hole[1].stop + 2)
    # a bin that is all missing data gives nothing
    blind = depth.copy()
    blind[v_min:v_max, u_min:u_max] = np.nan
    assert model.plan(observe(scene, blind)) == []


@pytest.mark.parametrize("gripper", ["suction", "parallel"])
def test_the_roi_is_respected(cluttered, gripper):
    scene, depth = cluttered
    u_min, v_min, u_max, v_max = scene.roi
    roi = (u_min, v_min, (u_min + u_max) // 2, v_max)  # the left half of the bin
    grasps = create_model("baseline", gripper=gripper).plan(observe(scene, depth, roi=roi), max_grasps=20)
    assert grasps
    for grasp in grasps:
        u, v = grasp.pixel
        assert roi[0] <= u < roi[2] and roi[1] <= v < roi[3]
        if grasp.width > 0:  # both fingertips inside the roi too
            for side in (-1.0, 1.0):
                tip = grasp.position + side * 0.5 * grasp.width * grasp.closing
                tip_u, tip_v = INTRINSICS.project(tip)
                assert roi[0] <= tip_u < roi[2] and roi[1] <= tip_v < roi[3]


# random


def test_random_model_is_reproducible_by_seed_and_stays_in_the_roi(cluttered):
    scene, depth = cluttered
    observation = observe(scene, depth)
    first = create_model("random", gripper="parallel", seed=0).plan(observation, max_grasps=8)
    again = create_model("random", gripper="parallel", seed=0).plan(observation, max_grasps=8)
    other = create_model("random", gripper="parallel", seed=1).plan(observation, max_grasps=8)
    assert len(first) == 8
    assert [(g.pixel, g.width, g.quality) for g in first] == [(g.pixel, g.width, g.quality) for g in again]
    assert [g.pixel for g in first] != [g.pixel for g in other]
    u_min, v_min, u_max, v_max = scene.roi
    for grasp in first:
        u, v = grasp.pixel
        assert u_min <= u < u_max and v_min <= v < v_max and np.isfinite(depth[v, u])
        assert 0.0 < grasp.width <= MAX_OPENING and grasp.approach == pytest.approx([0.0, 0.0, 1.0])
        assert grasp.model == "random"
    assert [g.quality for g in first] == sorted((g.quality for g in first), reverse=True)
    # one generator: the next plan differs from the first
    model = create_model("random", seed=5)
    assert [g.pixel for g in model.plan(observation)] != [g.pixel for g in model.plan(observation)]


# latency


def test_latency_benchmark_runs():
    observations = make_observations(np.random.default_rng(0), scene_count=1, part_count=10)
    result = measure_latency(create_model("baseline"), observations, repeats=2)
    assert result.model == "baseline" and result.gripper == "suction"
    assert 0.0 < result.median_ms <= result.p90_ms
    assert result.mean_grasp_count > 0
