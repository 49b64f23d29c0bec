"""Seed 000's dual-resolution suction net: preset grasps, labels, eq. 5 patches, the net, trainer, model, eval."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from grasp_cell.core.grasp import GripperKind
from grasp_cell.core.transform import Transform
from grasp_cell.eval import suction_eval
from grasp_cell.learn import suction_data
from grasp_cell.learn.suction_data import NOT_A_PART, PART_TYPES, SuctionTool, label_view, part_spec, preset_grasps
from grasp_cell.learn.suction_patches import SuctionPatches, SuctionViews, masked_patch
from grasp_cell.learn.train_suction import main as train_main
from grasp_cell.models import Observation, available_models, create_model
from grasp_cell.models.base import MODELS_DIR_ENV
from grasp_cell.models.suction_grasp import SuctionGraspModel
from grasp_cell.models.suction_net import PATCH, STRIDE, SuctionNet, suction_loss
from grasp_cell.sim.config import CellConfig
from grasp_cell.sim.world import SimWorld

torch.set_num_threads(1)


def test_preset_grasps_lie_on_the_cylinder_and_point_into_it():
    for diameter, length in PART_TYPES.values():
        points, approaches = preset_grasps(diameter, length)
        assert points.shape == approaches.shape == (21, 3)  # seed 000: 21 preset grasps per part type
        assert np.allclose(np.linalg.norm(approaches, axis=1), 1.0)
        radial = np.linalg.norm(points[:, :2], axis=1)
        on_face = np.isclose(np.abs(points[:, 2]), length / 2)
        on_side = np.isclose(radial, diameter / 2)
        assert (on_face | on_side).all() and on_face.sum() == 14 and on_side.sum() == 7
        # moving a little along the approach from the surface point enters the part
        inside = points + 1e-4 * approaches
        assert ((np.linalg.norm(inside[:, :2], axis=1) <= diameter / 2) & (np.abs(inside[:, 2]) <= length / 2)).all()


@pytest.mark.parametrize("context", [True, False])
def test_dense_pass_equals_the_patch_by_patch_net(context):
    torch.manual_seed(0)
    net = SuctionNet(context=context).eval()
    image = torch.rand(1, 1, PATCH + 3 * STRIDE, PATCH + 5 * STRIDE)
    with torch.inference_mode():
        dense = net.dense(image)
        rows, cols = dense[0].shape[-2:]
        assert (rows, cols) == (4, 6)
        for row, col in [(0, 0), (1, 4), (3, 5), (2, 1)]:
            patch = image[..., row * STRIDE : row * STRIDE + PATCH, col * STRIDE : col * STRIDE + PATCH]
            d, v, pz = net(patch)
            assert float(d[0]) == pytest.approx(float(dense[0][0, 0, row, col]), abs=1e-5)
            assert torch.allclose(v[0], dense[1][0, :, row, col], atol=1e-5)
            assert float(pz[0]) == pytest.approx(float(dense[2][0, 0, row, col]), abs=1e-5)
    with pytest.raises(ValueError):
        net.dense(torch.zeros(1, 1, PATCH + 4, PATCH))


def test_loss_masks_the_regression_terms_of_negatives():
    d_logit = torch.tensor([0.0, 2.0])
    v = torch.tensor([[0.0, 0.0, 1.0], [5.0, 5.0, 5.0]])
    pz = torch.tensor([0.55, 9.0])
    d_true = torch.tensor([1.0, 0.0])
    v_true = torch.tensor([[0.0, 0.6, 0.8], [1.0, 1.0, 1.0]])
    pz_true = torch.tensor([0.56, 1.0])
    total, parts = suction_loss(d_logit, v, pz, d_true, v_true, pz_true, weights=(1.0, 2.0, 3.0))
    j_d = (math.log(2) + math.log(1 + math.exp(2.0))) / 2  # cross entropy of sigmoid(0) vs 1, sigmoid(2) vs 0
    j_pz = 0.5 * (100 * 0.01) ** 2 / 2  # only the positive counts, pz in centimetres
    j_v = 0.5 * (0.6**2 + 0.2**2) / 2
    assert parts["d"] == pytest.approx(j_d, rel=1e-5)
    assert parts["pz"] == pytest.approx(j_pz, rel=1e-4)
    assert parts["v"] == pytest.approx(j_v, rel=1e-5)
    assert float(total) == pytest.approx(j_d + 2 * j_pz + 3 * j_v, rel=1e-4)


def test_eq5_masking_drops_only_reflective_pixels_outside_the_window():
    depth = np.full((PATCH, PATCH), 5000, np.uint16)  # 0.5 m
    intensity = np.full((PATCH, PATCH), NOT_A_PART, np.uint8)
    intensity[:10] = 250  # part facing the camera: saturates (above any m2 <= 0.95)
    intensity[10:20] = 5  # part seen edge-on: too dark (below any m1 >= 0.05)
    intensity[20:30] = 125  # part in between: always measured (m1 <= 0.25, m2 >= 0.75)
    image = masked_patch(depth, intensity, np.random.default_rng(0))
    assert np.abs(image[:20]).max() <= 0.001  # missing: 0 plus noise
    assert np.allclose(image[20:], 0.5, atol=0.001)


@pytest.fixture(scope="module")
def suction_world():
    with SimWorld(CellConfig()) as world:
        yield world


def test_labels_pick_one_visible_collision_free_grasp_per_part(suction_world):
    world = suction_world
    tool = SuctionTool(world)
    world.clear_parts()
    upright = world.add_part(part_spec("large"), Transform(translation=[0.0, 0.0, world.bin_floor_z + 0.016]))
    lying = Transform.from_pos_quat([0.08, 0.03, world.bin_floor_z + 0.0125], [0.0, 0.7071068, 0.0, 0.7071068])
    world.add_part(part_spec("medium"), lying)
    intrinsics = world.config.camera.intrinsics
    view = label_view(world, tool, intrinsics, world.T_world_cam)
    assert view.grasps.shape == (2, 6)
    for u, v, pz, *approach in view.grasps:
        assert np.linalg.norm(approach) == pytest.approx(1.0, abs=1e-5) and approach[2] > 0.8  # down, into the bin
        assert view.depth[int(v), int(u)] * 1e-4 == pytest.approx(pz, abs=0.002)  # the visible surface
        assert view.intensity[int(v), int(u)] != NOT_A_PART
    # the upright cylinder is grasped on its top face, at its centre (the grasp closest to straight down)
    top = world.T_world_cam.inverse().apply(world.part_pose(upright).translation + [0, 0, 0.0317 / 2])
    u, v = intrinsics.project(top)
    assert np.isclose(view.grasps[:, :2], [round(u), round(v)], atol=1).all(axis=1).any()
    # a part hidden under the tool's path is not grasped: the tool would hit the bin wall
    assert not tool.collides(np.array([0.0, 0.0, world.bin_floor_z + 0.032]), np.array([0.0, 0.0, -1.0]), upright)
    assert tool.collides(np.array([0.17, 0.0, world.bin_floor_z + 0.01]), np.array([-1.0, 0.0, 0.0]), upright)


def test_data_trainer_model_and_eval_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(suction_data, "VIEWS_PER_SCENE", 2)
    data = tmp_path / "suction"
    args = ["--out", str(data), "--scenes", "2", "--scenes-per-shard", "1", "--workers", "1"]
    assert suction_data.main(args) == 0
    views = SuctionViews.load(data)
    assert len(views) == 4 and views.grasps.shape[1] == 6 and len(views.grasps) > 0
    before = (data / "shard_00000.npz").stat().st_mtime_ns
    assert suction_data.main(args) == 0  # resumes: nothing to make
    assert (data / "shard_00000.npz").stat().st_mtime_ns == before

    patches = SuctionPatches(views, np.arange(len(views)))
    assert len(patches) == 2 * len(views.grasps)
    positive, negative = patches[0], patches[len(patches) - 1]
    assert positive["image"].shape == (1, PATCH, PATCH) and float(positive["d"]) == 1.0
    assert float(negative["d"]) == 0.0

    out = tmp_path / "models"
    train_main(f"--data {data} --epochs 1 --max-steps 2 --batch-size 16 --out {out} --runs {tmp_path / 'runs'}".split())
    card = yaml.safe_load((out / "suction_dual.yaml").read_text())
    assert card["settings"]["context"] is True and card["settings"]["steps"] == 2
    assert (out / "suction_dual.pt").stat().st_size < 20e6

    monkeypatch.setenv(MODELS_DIR_ENV, str(out))
    assert "suction_dual" in available_models() and "suction_single" not in available_models()
    with pytest.raises(ValueError, match="suction"):
        create_model("suction_dual", gripper="parallel")
    model = create_model("suction_dual", min_quality=0.0)
    assert isinstance(model, SuctionGraspModel)
    depth = np.full((480, 640), 0.6, np.float32)
    depth[200:260, 300:340] = 0.57
    depth[100:110, 100:110] = np.nan
    intrinsics = CellConfig().camera.intrinsics
    grasps = model.plan(Observation(depth, intrinsics, roi=(200, 150, 440, 330)), max_grasps=5)
    assert len(grasps) <= 5 and all(g.gripper is GripperKind.SUCTION for g in grasps)  # 2 steps: any answer

    results = tmp_path / "eval"
    eval_args = f"--models suction_dual --successes 1 --max-attempts 2 --workers 1 --out {results}".split()
    assert suction_eval.main(eval_args) == 0
    records = [json.loads(line) for line in (results / "attempts.jsonl").read_text().splitlines()]
    assert 1 <= len(records) <= 2 and all(r["model"] == "suction_dual" for r in records)
    assert (results / "fig6_success_vs_parts.png").exists() and (results / "fig7_failures_vs_parts.png").exists()


class GivenOutputs(torch.nn.Module):
    """Stands in for the net: confidence 0.9 at one grid cell and 0.6 at another, 0.95 for the refined patch
    2 px right of the first cell's centre; v straight down the camera axis; pz 0.57 m."""

    def __init__(self, best_cell, second_cell):
        super().__init__()
        self.best_cell, self.second_cell = best_cell, second_cell
        self.patch_calls = []

    def dense(self, image):
        rows, cols = (image.shape[-2] - PATCH) // STRIDE + 1, (image.shape[-1] - PATCH) // STRIDE + 1
        d = torch.full((1, 1, rows, cols), -5.0)
        d[0, 0, self.best_cell[0], self.best_cell[1]] = math.log(0.9 / 0.1)
        d[0, 0, self.second_cell[0], self.second_cell[1]] = math.log(0.6 / 0.4)
        v = torch.zeros((1, 3, rows, cols))
        v[0, 2] = 2.0  # any length: the model normalises
        return d, v, torch.full((1, 1, rows, cols), 0.57)

    def forward(self, patches):
        count = patches.shape[0]
        self.patch_calls.append(count)
        d = torch.full((count,), -5.0)
        if len(self.patch_calls) == 1:
            d[12 + 1] = math.log(0.95 / 0.05)  # offsets (-4..4 step 2)^2, row-major: (+2, 0) is index 13
        return d, torch.tensor([[0.0, 0.6, 0.8]]).repeat(count, 1), torch.full((count,), 0.565)


def test_plan_geometry_from_given_outputs():
    intrinsics = CellConfig().camera.intrinsics
    model = SuctionGraspModel.untrained(refine=1, min_quality=0.5)
    model.net = GivenOutputs(best_cell=(3, 5), second_cell=(10, 20))
    roi = (200, 150, 440, 330)
    grasps = model.plan(Observation(np.full((480, 640), 0.6, np.float32), intrinsics, roi=roi), max_grasps=5)
    assert len(grasps) == 2 and model.net.patch_calls == [25]  # only the best cell is refined
    refined, second = grasps
    # the refined patch centred 2 px right of cell (3, 5): u = 200 + 8 * 5 + 2, v = 150 + 8 * 3
    assert refined.pixel == (242, 174) and refined.quality == pytest.approx(0.95, abs=1e-6)
    assert np.allclose(refined.position, intrinsics.deproject(242, 174, 0.565))
    assert np.allclose(refined.approach, [0.0, 0.6, 0.8])
    assert second.pixel == (200 + 8 * 20, 150 + 8 * 10) and second.quality == pytest.approx(0.6, abs=1e-6)
    assert np.allclose(second.approach, [0.0, 0.0, 1.0])
    assert np.allclose(intrinsics.project(second.position), second.pixel)
    model.min_quality = 0.7
    model.net.patch_calls.clear()
    assert [g.pixel for g in model.plan(Observation(np.full((480, 640), 0.6, np.float32), intrinsics, roi=roi))] == [
        (242, 174)
    ]


def test_summary_counts_causes_and_placement_success():
    def record(parts, outcome, cause=""):
        return {"model": "m", "parts": parts, "outcome": outcome, "cause": cause}

    records = [
        record(3, "success"),
        record(3, "collision", "collision"),
        record(12, "success"),
        record(12, "missed", "poor grasp"),
        record(28, "no_grasp", "other"),
    ]
    summary = suction_eval.summarize(records)["m"]
    assert summary["attempts"] == 5 and summary["successes"] == 2
    assert summary["success_rate"] == pytest.approx(0.4)
    assert summary["placement_success_rate"] == pytest.approx(2 / 4)  # collisions left out
    assert summary["failures"] == {"collision": 1, "poor grasp": 1, "other": 1}
    assert summary["by_parts"]["1-5"] == {"attempts": 2, "success_rate": 0.5, "failures": {"collision": 1}}
    assert summary["by_parts"]["26-30"]["success_rate"] == 0.0
