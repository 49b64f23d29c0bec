"""Seed 004's grasp pose optimisation (section IV) and its evaluation on unseen objects.

    python -m grasp_cell.learn.hand_optimise --data data/hand --weights models/hand_quality_6d.pt --problems 100
    python -m grasp_cell.learn.hand_optimise --data data/hand --weights models/hand_quality_6d_free.pt --model-free

From an initial pose, BFGS (SciPy) minimises -x1(g, I) + alpha / (eps + distance(hand, object)): the learned
logit of the pose g seen in the height image I, plus the seed's inverse collision barrier, whose distance
needs the object's model (PyBullet's closest points, with the open hand). ``--model-free`` drops the barrier
and relies on a net trained with colliding negatives. Without the object's model the barrier can still stand
on what the image itself says: ``--image-hull`` takes the distance to the column under the surface the
top-down image sees (the object's hull from above, ``ImageHull``); ``--clearance-weights`` the distance a
second net predicts from the image and pose (``train_hand_quality --target clearance``, learnt in the lab
from the object models, needing none here). With either, an optimised pose that they say collides is
refused and the start pose kept. Pose variables: the position in units of POSITION_SCALE and a rotation
vector applied to the initial rotation; the logit's gradient (and the model-free barriers') comes from
torch, the object model's barrier's from central differences.

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
from scipy import ndimage
from scipy.optimize import minimize

from grasp_cell.core.transform import Transform, rotation_about_axis
from grasp_cell.learn.hand_data import IMAGE_CELL, LABELS, OBJECT_SET, failure_rule_of
from grasp_cell.learn.train_hand_quality import HandGrasps
from grasp_cell.models.hand_quality_net import (
    CLEARANCE_SCALE,
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
HULL_SPACING = 0.005  # [m] between the open hand's points whose distance to the image's hull is taken
HULL_PAD = 16  # voxels (60 mm) of the hull's distance field beyond the image on every side
REFUSE_DEPTH = 0.001  # [m] an optimised pose whose open hand reaches deeper into the image's hull is refused
LEARNED_SOFTNESS = 0.001  # [m] a learnt distance enters the barrier as this * softplus(distance / this): like the
# distance when clear, still falling (so the optimiser is pushed out) when the net says the hand is inside


@dataclass
class ImageHull:
    """The object as far as a top-down height image can tell: every point under the surface it sees, down to
    the image's floor level (z = 0, the object's lowest point), a superset of the object. Held as its signed
    distance field [m] (negative inside) on a voxel grid of the image's cell, padded by HULL_PAD voxels, so
    the seed's barrier can use the open hand's distance to the hull where it has no object model."""

    sdf: torch.Tensor  # (1, 1, Z, Y, X) [m] at x = (X - HULL_PAD - (P - 1) / 2) cell, z = (Z - HULL_PAD) cell
    pixels: int
    cell: float  # [m]
    points: torch.Tensor  # (M, 3) HandGeometry.open_points(HULL_SPACING) in the tcp frame

    @classmethod
    def of(cls, heights: np.ndarray, cell: float = IMAGE_CELL) -> "ImageHull":
        padded = np.pad(heights.astype(np.float64), HULL_PAD)
        levels = int(math.ceil(float(heights.max()) / cell)) + 1 + 2 * HULL_PAD
        z = ((np.arange(levels) - HULL_PAD) * cell)[:, None, None]
        inside = (padded[None] > 0) & (z >= 0.0) & (z <= padded[None])
        # voxel centres to the nearest voxel of the other kind, less the half voxel to the boundary between
        sdf = np.where(inside, 0.5 - ndimage.distance_transform_edt(inside),
                       ndimage.distance_transform_edt(~inside) - 0.5) * cell
        points = torch.from_numpy(HandGeometry().open_points(spacing=HULL_SPACING))
        return cls(torch.from_numpy(sdf)[None, None], heights.shape[-1], cell, points)

    def distance(self, position: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """The open hand's signed distance [m] to the hull at the tcp pose (image frame), differentiable."""
        points = position + self.points @ rotation.T
        index = points / self.cell + torch.tensor([HULL_PAD + 0.5 * (self.pixels - 1)] * 2 + [HULL_PAD],
                                                  dtype=points.dtype)
        size = torch.tensor(self.sdf.shape[:1:-1], dtype=points.dtype)  # X, Y, Z
        grid = (2 * index / (size - 1) - 1)[None, None, None]
        values = torch.nn.functional.grid_sample(self.sdf, grid, align_corners=True, padding_mode="border")
        return values.min()


@dataclass
class PoseObjective:
    """f(x) of one problem: x = (position offset / POSITION_SCALE, rotation vector) from ``T_img_start``."""

    net: HandQualityNet
    heights: np.ndarray  # (P, P) the image
    T_img_start: Transform
    T_obj_img: Transform | None = None  # with a hand lab: the barrier's distance, in the object's frame
    hand: FloatingHand | None = None
    hull: ImageHull | None = None  # model-free: the barrier on the distance to the image's hull
    clearance_net: HandQualityNet | None = None  # model-free: the barrier on the distance this net predicts

    def pose(self, x: np.ndarray) -> Transform:
        rotation = self.T_img_start.rotation @ rotation_about_axis(x[3:], float(np.linalg.norm(x[3:]))) \
            if np.linalg.norm(x[3:]) > 0 else self.T_img_start.rotation
        return Transform(rotation, self.T_img_start.translation + POSITION_SCALE * np.asarray(x[:3]))

    def image(self) -> torch.Tensor:
        """(1, 1, P, P) the heights as the nets take them."""
        return torch.from_numpy(self.heights.astype(np.float32))[None, None]

    def logit_and_gradient(self, x: np.ndarray, barriers: bool = False) -> tuple[float, np.ndarray]:
        """The learned logit at ``x`` and its gradient; with ``barriers``, minus the model-free barriers this
        objective has (on the distance to the image's hull, on the distance ``clearance_net`` predicts)."""
        variables = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        start = torch.from_numpy(self.T_img_start.rotation)
        rotation = start @ rotation_vector_matrices(variables[None, 3:])[0]
        position = torch.from_numpy(self.T_img_start.translation) + POSITION_SCALE * variables[:3]
        image = self.image()
        value = self.net(image, position[None].float(), rotation[None].float())[0].double()
        if barriers and self.hull is not None:
            value = value - BARRIER_ALPHA / (BARRIER_EPS + torch.relu(self.hull.distance(position, rotation)))
        if barriers and self.clearance_net is not None:
            distance = CLEARANCE_SCALE * self.clearance_net(image, position[None].float(), rotation[None].float())[0]
            soft = LEARNED_SOFTNESS * torch.nn.functional.softplus(distance.double() / LEARNED_SOFTNESS)
            value = value - BARRIER_ALPHA / (BARRIER_EPS + soft)
        value.backward()
        return float(value.detach()), variables.grad.numpy().copy()

    def predicted_clearance(self, x: np.ndarray) -> float:
        """The open hand's distance to the object [m] at ``x`` as ``clearance_net`` predicts it."""
        pose = self.pose(x)
        with torch.no_grad():
            distance = self.clearance_net(self.image(), torch.from_numpy(pose.translation[None]).float(),
                                          torch.from_numpy(pose.rotation[None]).float())[0]
        return CLEARANCE_SCALE * float(distance)

    def refuses(self, x: np.ndarray) -> bool:
        """Without the object's model: whether the pose at ``x`` collides as far as this objective can tell,
        the open hand more than REFUSE_DEPTH inside the image's hull (``hull``), or inside the object by
        ``clearance_net``'s prediction. Nothing is refused when it has neither."""
        if self.hull is not None and self.hull_distance(x) < -REFUSE_DEPTH:
            return True
        return self.clearance_net is not None and self.predicted_clearance(x) < 0.0

    def hull_distance(self, x: np.ndarray) -> float:
        """The open hand's signed distance [m] to ``hull`` at ``x``."""
        pose = self.pose(x)
        return float(self.hull.distance(torch.from_numpy(pose.translation), torch.from_numpy(pose.rotation)))

    def barrier(self, x: np.ndarray) -> float:
        distance = self.hand.distance(self.T_obj_img * self.pose(x))
        return BARRIER_ALPHA / (BARRIER_EPS + max(distance, 0.0))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        logit, gradient = self.logit_and_gradient(x, barriers=True)
        value, gradient = -logit, -gradient
        if self.hand is not None:
            value += self.barrier(x)
            for i in range(6):
                step = np.zeros(6)
                step[i] = DISTANCE_STEP
                gradient[i] += (self.barrier(x + step) - self.barrier(x - step)) / (2 * DISTANCE_STEP)
        return value, gradient


def optimise(objective: PoseObjective) -> tuple[Transform, dict]:
    """BFGS from the start pose; returns the best pose found and a summary. An end pose that the objective's
    model-free collision check refuses (``refuses``) is dropped and the start pose kept (``kept_start``)."""
    with torch.enable_grad():
        result = minimize(objective, np.zeros(6), jac=True, method="BFGS", options={"maxiter": MAX_ITERATIONS})
    x = result.x
    kept_start = objective.refuses(x)
    if kept_start:
        x = np.zeros(6)
    start_logit, _ = objective.logit_and_gradient(np.zeros(6))
    end_logit, _ = objective.logit_and_gradient(x)
    return objective.pose(x), {"iterations": int(result.nit), "start_logit": start_logit, "end_logit": end_logit,
                               "objective": float(result.fun), "kept_start": bool(kept_start)}


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
    parser.add_argument("--model-free", action="store_true", help="no object model: no barrier but what "
                        "--image-hull or --clearance-weights give")
    parser.add_argument("--image-hull", action="store_true", help="model-free: the barrier on the open hand's "
                        "distance to the object's hull as the top-down image shows it")
    parser.add_argument("--clearance-weights", type=Path, default=None, help="model-free: the collision barrier on "
                        "the distance this net predicts (train_hand_quality --target clearance)")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write a JSON summary here")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    net = load_quality_net(args.weights)
    if (args.clearance_weights or args.image_hull) and not args.model_free:
        parser.error("--image-hull and --clearance-weights stand in for the object model: they need --model-free")
    clearance_net = load_quality_net(args.clearance_weights) if args.clearance_weights else None
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
                                      ImageHull.of(data.images[slot, image]) if args.image_hull else None,
                                      clearance_net)
            T_img_end, summary = optimise(objective)
            T_obj_end = T_img_obj.inverse() * T_img_end
            # each judged with its own shakes, drawn from the problem's number alone: every method meets the same
            # problems and shakes (paired), however many draws the others made
            shakes = [np.random.default_rng([args.seed, len(details), k]) for k in range(3)]
            colliding = hand.distance(T_obj_end, 0.0) < 0.0  # the open hand would start inside the object
            result = GraspLabel.FAILED if colliding else hand.trial(T_obj_end, shakes[0]).label
            outcomes["optimised"].append(result is GraspLabel.ROBUST)
            outcomes["initial"].append(hand.trial(T_obj_start, shakes[1]).label is GraspLabel.ROBUST)
            uniform = uniform_pose(hand, shakes[2])
            outcomes["uniform"].append(hand.trial(uniform, shakes[2]).label is GraspLabel.ROBUST)
            details.append({**summary, "object": int(data.objects[slot]), "result": result.value,
                            "colliding": bool(colliding),
                            "moved_mm": float(1000 * np.linalg.norm(T_obj_end.translation - T_obj_start.translation))})
            rates = {name: 100 * np.mean(values) for name, values in outcomes.items()}
            print(f"problem {len(details)}: {result.value}, logit {summary['start_logit']:.2f} -> "
                  f"{summary['end_logit']:.2f} ({summary['iterations']} iterations); robust so far: "
                  + ", ".join(f"{name} {rate:.0f} %" for name, rate in rates.items()), flush=True)
    summary = {"weights": str(args.weights), "model_free": args.model_free, "image_hull": args.image_hull,
               "clearance_weights": str(args.clearance_weights) if args.clearance_weights else None,
               "problems": len(details),
               "robust_percent": {name: round(100 * float(np.mean(v)), 1) for name, v in outcomes.items()},
               "colliding": int(sum(d["colliding"] for d in details)),
               "kept_start": int(sum(d["kept_start"] for d in details)),
               "minutes": round((time.monotonic() - start) / 60, 1)}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "details": details}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
