"""Seed 004's grasp pose optimisation (section IV) and its evaluation on unseen objects.

    python -m grasp_cell.learn.hand_optimise --data data/hand --weights models/hand_quality_6d.pt --problems 100
    python -m grasp_cell.learn.hand_optimise --data data/hand --weights models/hand_quality_6d_free.pt --model-free

From an initial pose, BFGS (SciPy) minimises -x1(g, I) + alpha / (eps + distance(hand, object)): the learned
logit of the pose g seen in the height image I, plus the seed's inverse collision barrier, whose distance
needs the object's model (PyBullet's closest points, with the open hand). ``--model-free`` drops the barrier
and relies on a net trained with colliding negatives; ``--image-clearance`` adds to it what the image itself
says (no object model): the open hand's outline kept out of the column under the surface the top-down image
sees, the object's hull from above, as the cell planner keeps the hand above what its camera sees. Pose
variables: the position in units of POSITION_SCALE and a rotation vector applied to the initial rotation; the
logit's gradient (and the clearance's) comes from torch, the barrier's from central differences.

Problems (seed IV): robust poses of unseen objects from the dataset, pulled back along the approach by
``PULL_BACK`` and turned by up to ``MAX_TURN`` about a random axis, kept only if still qualified. Each
optimised pose is judged by the same trial as the data (close without gravity, 10 shakes): the success
rate is the share judged robust. For comparison the command also judges the initial poses unchanged and
poses drawn uniformly (the seed's "naive uniform pose sampling": 2 %).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.learn.hand_data import IMAGE_CELL, LABELS, OBJECT_SET, failure_rule_of
from grasp_cell.learn.train_hand_quality import HandGrasps
from grasp_cell.models.hand_quality_net import (
    POSITION_SCALE,
    HandQualityNet,
    load_quality_net,
    rotation_vector_matrices,
)
from grasp_cell.sim.floating_hand import FloatingHand, GraspLabel, random_direction, random_rotation
from grasp_cell.sim.hand import HandGeometry
from grasp_cell.sim.objects import object_set

BARRIER_ALPHA = 0.005  # [m] with BARRIER_EPS: 500 at contact (seed: "about 500"), 1 at 5 mm, 0.25 at 20 mm
BARRIER_EPS = 1e-5  # [m]
DISTANCE_STEP = 0.001  # central differences of the distance: 1 mm, 1 mrad
PULL_BACK = (0.02, 0.05)  # [m] along the approach, away from the object
MAX_TURN = math.radians(30.0)
MAX_ITERATIONS = 40
CLEARANCE_PENALTY = 1e4  # per m^2 of outline inside the image's hull (the cell planner's weight)


@dataclass
class ImageClearance:
    """How deep the open hand's outline reaches into the column between the image's floor level (the object's
    lowest point) and the surface it sees: the object's hull from above, all a top-down image can tell."""

    heights: torch.Tensor  # (1, 1, P, P) [m] rows along y, columns along x, centred on the image frame
    cell: float  # [m]
    outline: torch.Tensor  # (M, 3) HandGeometry.open_points in the tcp frame

    @classmethod
    def of(cls, heights: np.ndarray, cell: float = IMAGE_CELL) -> "ImageClearance":
        outline = torch.from_numpy(HandGeometry().open_points())
        return cls(torch.from_numpy(heights.astype(np.float64))[None, None], cell, outline)

    def depths(self, position: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """(M,) [m] each outline point's depth inside the hull (0 outside), differentiable in the pose."""
        points = position + self.outline @ rotation.T
        half = 0.5 * (self.heights.shape[-1] - 1) * self.cell
        grid = (points[:, :2] / half)[None, None]
        surface = torch.nn.functional.grid_sample(self.heights, grid, align_corners=True)[0, 0, 0]
        z = points[:, 2]
        return torch.relu(torch.minimum(surface - z, z)) * (surface > 0)


@dataclass
class PoseObjective:
    """f(x) of one problem: x = (position offset / POSITION_SCALE, rotation vector) from ``T_img_start``."""

    net: HandQualityNet
    heights: np.ndarray  # (P, P) the image
    T_img_start: Transform
    T_obj_img: Transform | None = None  # with a hand lab: the barrier's distance, in the object's frame
    hand: FloatingHand | None = None
    clearance: ImageClearance | None = None  # model-free: the image's hull as the obstacle

    def pose(self, x: np.ndarray) -> Transform:
        rotation = self.T_img_start.rotation @ rotation_about_axis(x[3:], float(np.linalg.norm(x[3:]))) \
            if np.linalg.norm(x[3:]) > 0 else self.T_img_start.rotation
        return Transform(rotation, self.T_img_start.translation + POSITION_SCALE * np.asarray(x[:3]))

    def logit_and_gradient(self, x: np.ndarray, clearance: bool = False) -> tuple[float, np.ndarray]:
        """The learned logit at ``x`` and its gradient; with ``clearance``, minus the image clearance penalty."""
        variables = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        start = torch.from_numpy(self.T_img_start.rotation)
        rotation = start @ rotation_vector_matrices(variables[None, 3:])[0]
        position = torch.from_numpy(self.T_img_start.translation) + POSITION_SCALE * variables[:3]
        image = torch.from_numpy(self.heights.astype(np.float32))[None, None]
        value = self.net(image, position[None].float(), rotation[None].float())[0].double()
        if clearance and self.clearance is not None:
            value = value - CLEARANCE_PENALTY * (self.clearance.depths(position, rotation) ** 2).sum()
        value.backward()
        return float(value.detach()), variables.grad.numpy().copy()

    def barrier(self, x: np.ndarray) -> float:
        distance = self.hand.distance(self.T_obj_img * self.pose(x))
        return BARRIER_ALPHA / (BARRIER_EPS + max(distance, 0.0))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        logit, gradient = self.logit_and_gradient(x, clearance=True)
        value, gradient = -logit, -gradient
        if self.hand is not None:
            value += self.barrier(x)
            for i in range(6):
                step = np.zeros(6)
                step[i] = DISTANCE_STEP
                gradient[i] += (self.barrier(x + step) - self.barrier(x - step)) / (2 * DISTANCE_STEP)
        return value, gradient


def optimise(objective: PoseObjective) -> tuple[Transform, dict]:
    """BFGS from the start pose; returns the best pose found and a summary."""
    with torch.enable_grad():
        result = minimize(objective, np.zeros(6), jac=True, method="BFGS", options={"maxiter": MAX_ITERATIONS})
    start_logit, _ = objective.logit_and_gradient(np.zeros(6))
    end_logit, _ = objective.logit_and_gradient(result.x)
    return objective.pose(result.x), {"iterations": int(result.nit), "start_logit": start_logit,
                                      "end_logit": end_logit, "objective": float(result.fun)}


def perturbed(T_obj_tcp: Transform, rng: np.random.Generator) -> Transform:
    """Pulled back along the approach and turned about a random axis (seed IV's problems)."""
    back = T_obj_tcp.translation - rng.uniform(*PULL_BACK) * T_obj_tcp.rotation[:, 2]
    turn = rotation_about_axis(random_direction(rng), rng.uniform(0.0, MAX_TURN))
    return Transform(turn @ T_obj_tcp.rotation, back)


def uniform_pose(hand: FloatingHand, rng: np.random.Generator) -> Transform:
    """A pose drawn uniformly: tcp within the object's bounding radius plus 3 cm, any rotation."""
    radius = hand.spec.bounding_radius + 0.03
    while True:
        point = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(point) <= radius:
            return Transform(random_rotation(rng), point)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/hand"))
    parser.add_argument("--weights", type=Path, default=Path("models/hand_quality_6d.pt"))
    parser.add_argument("--model-free", action="store_true", help="no collision barrier (no object model)")
    parser.add_argument("--image-clearance", action="store_true", help="model-free: keep the open hand out of the "
                        "object's hull as the top-down image shows it")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write a JSON summary here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    net = load_quality_net(args.weights)
    data = HandGrasps.load(args.data)
    robust = np.flatnonzero((data.label == LABELS.index("robust")) & data.unseen())
    if not len(robust):
        parser.error(f"{args.data} holds no robust grasps of unseen objects")
    outcomes = {"optimised": [], "initial": [], "uniform": []}
    details = []
    start = time.monotonic()
    with FloatingHand(failure_rule=failure_rule_of(args.data)) as hand:  # judged as the data was labelled
        while len(details) < args.problems:
            row = int(rng.choice(robust))
            slot = int(data.slot[row])
            hand.set_object(object_set(OBJECT_SET)[int(data.objects[slot])])
            T_obj_robust = Transform.from_matrix(data.T_obj_tcp[row])
            T_obj_start = perturbed(T_obj_robust, rng)
            if not hand.qualified(T_obj_start):
                continue
            image = int(rng.integers(data.images.shape[1]))
            T_img_obj = Transform.from_matrix(data.T_img_obj[slot, image])
            objective = PoseObjective(net, data.images[slot, image], T_img_obj * T_obj_start,
                                      None if args.model_free else T_img_obj.inverse(),
                                      None if args.model_free else hand,
                                      ImageClearance.of(data.images[slot, image]) if args.image_clearance else None)
            T_img_end, summary = optimise(objective)
            T_obj_end = T_img_obj.inverse() * T_img_end
            colliding = hand.distance(T_obj_end, 0.0) < 0.0  # the open hand would start inside the object
            result = GraspLabel.FAILED if colliding else hand.trial(T_obj_end, rng).label
            outcomes["optimised"].append(result is GraspLabel.ROBUST)
            outcomes["initial"].append(hand.trial(T_obj_start, rng).label is GraspLabel.ROBUST)
            outcomes["uniform"].append(hand.trial(uniform_pose(hand, rng), rng).label is GraspLabel.ROBUST)
            details.append({**summary, "object": int(data.objects[slot]), "result": result.value,
                            "colliding": bool(colliding),
                            "moved_mm": float(1000 * np.linalg.norm(T_obj_end.translation - T_obj_start.translation))})
            rates = {name: 100 * np.mean(values) for name, values in outcomes.items()}
            print(f"problem {len(details)}: {result.value}, logit {summary['start_logit']:.2f} -> "
                  f"{summary['end_logit']:.2f} ({summary['iterations']} iterations); robust so far: "
                  + ", ".join(f"{name} {rate:.0f} %" for name, rate in rates.items()), flush=True)
    summary = {"weights": str(args.weights), "model_free": args.model_free, "image_clearance": args.image_clearance,
               "problems": len(details),
               "robust_percent": {name: round(100 * float(np.mean(v)), 1) for name, v in outcomes.items()},
               "colliding": int(sum(d["colliding"] for d in details)),
               "minutes": round((time.monotonic() - start) / 60, 1)}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "details": details}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
