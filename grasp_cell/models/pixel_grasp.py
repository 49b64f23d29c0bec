"""Seed 003's pixel-level grasp network served as a GraspModel, one registered name per weights file.

``models/pixel_<backbone>_<modality>.pt`` (written by ``python -m grasp_cell.learn.train_pixel``) registers as
``pixel_<backbone>_<modality>``. Planning follows seed 003 section IV: the net sees the bin's roi at half
resolution; grasp points are local maxima of Qp, each with its best angle class and the width of that class;
the approach depth d comes from the depth image under the two finger footprints (eq. 7); eqs. 8 and 9 give
the pose in the camera frame.

torch is imported only when a model is built, so listing the registry stays cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from grasp_cell.core.depth import fill_missing
from grasp_cell.core.geometry import ParallelDepth, downsample_depth
from grasp_cell.core.grasp import Grasp, GripperKind
from grasp_cell.core.jaw import ANGLE_CLASSES, JawGeometry, closing_direction, planar_grasp_rotation
from grasp_cell.core.transform import Transform
from grasp_cell.models.base import GraspModel, Observation, models_dir, register_weights_files, weights_file_factory

MODALITY_CHANNELS = {"depth": 1, "rgb": 3, "rgbd": 4}
WEIGHTS_NAME = re.compile(r"^pixel_(lite|unet)_(depth|rgb|rgbd)$")
_MIN_CANDIDATES = 400  # pixels given the (vectorised, cheap) depth check, at least
_ANGLES_PER_PIXEL = 3  # best angle classes tried per candidate pixel
_CHECK_CHUNK = 100  # candidates depth-checked at a time
_DEPTH_MARGIN = 0.005  # [m] approach depth d stays this far short of the finger length L3, and must be at least this


def weights_path(backbone: str, modality: str, folder: Path | None = None) -> Path:
    return Path(folder or models_dir()) / f"pixel_{backbone}_{modality}.pt"


def network_input(depth: np.ndarray, color: np.ndarray | None, modality: str) -> np.ndarray:
    """The net's input (C, H, W) float32 from depth (H, W) [m], NaN = missing, and RGB (H, W, 3) uint8.

    Seed 003 IV-B: depth holes filled, then each image centred on its own mean; colour scaled to [0, 1] and
    centred per channel. Channels: depth | r, g, b | r, g, b, depth.
    """
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality '{modality}'; expected one of {', '.join(MODALITY_CHANNELS)}")
    channels = []
    if modality in ("rgb", "rgbd"):
        if color is None:
            raise ValueError(f"the '{modality}' input needs a colour image")
        rgb = np.moveaxis(np.asarray(color, dtype=np.float32) * (1.0 / 255.0), -1, 0)
        channels.extend(rgb - rgb.mean(axis=(1, 2), keepdims=True))
    if modality in ("depth", "rgbd"):
        filled = fill_missing(np.asarray(depth, dtype=np.float32))
        channels.append(filled - filled.mean())
    return np.stack(channels).astype(np.float32, copy=False)


def nan_block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of the valid values of each ``factor`` x ``factor`` block over the leading two axes (NaN if none);
    rows and columns that do not fill a block are dropped. Trailing axes (colour channels) are kept."""
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: rows * factor, : cols * factor].astype(np.float32)
    blocks = blocks.reshape(rows, factor, cols, factor, *image.shape[2:])
    valid = np.isfinite(blocks)
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


@dataclass(frozen=True)
class PixelGraspSettings:
    """What a checkpoint says about the net it holds."""

    backbone: str
    modality: str
    angle_classes: int
    jaw: JawGeometry
    downsample: int  # the net sees images reduced by this factor

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "PixelGraspSettings":
        jaw = {key: float(value) for key, value in checkpoint["jaw"].items() if key in JawGeometry.__annotations__}
        return cls(
            backbone=str(checkpoint["backbone"]),
            modality=str(checkpoint["modality"]),
            angle_classes=int(checkpoint["angle_classes"]),
            jaw=JawGeometry(**jaw),
            downsample=int(checkpoint["downsample"]),
        )


class PixelGraspModel(GraspModel):
    """Seed 003's pixel-level parallel-jaw grasp net (see the module docstring)."""

    gripper = GripperKind.PARALLEL

    def __init__(
        self,
        checkpoint: dict,
        name: str = "pixel",
        min_quality: float = 0.1,  # grasps scoring (Qp x Qθ) below this are not grasps (the cell logs no_grasp)
        nms_size: int = 5,  # [net pixels] ranked grasps lie outside each other's window of this size
        context: int = 16,  # [net pixels] of image around the roi the net also sees (bin walls, as in training)
        tip_clearance: float = 0.006,  # [m] fingertips above the highest point under them: an arm's tracking and
        # tilt error (2 mm, 2 degrees over 110 mm fingers) must not put them into the bin floor
        contact_friction: float = 0.2,  # mu of the friction cone the contacts must meet at the approach depth
        # chosen, as the labels' (grasp_cell.learn.pdg)
        threads: int = 1,  # torch CPU threads: on a busy 2-core machine two spin-waiting threads ran 40x slower
        device: str = "cpu",
    ):
        import torch

        from grasp_cell.models.pixel_net import PixelGraspNet

        if not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must lie in [0, 1], got {min_quality}")
        if nms_size < 1 or nms_size % 2 == 0:
            raise ValueError(f"nms_size must be odd and positive, got {nms_size}")
        if context < 0:
            raise ValueError(f"context must be >= 0, got {context}")
        self.name = name
        self.settings = PixelGraspSettings.from_checkpoint(checkpoint)
        self.min_quality, self.nms_size, self.context, self.threads = min_quality, nms_size, context, threads
        self.tip_clearance = tip_clearance
        if contact_friction <= 0.0:
            raise ValueError(f"contact_friction must be > 0, got {contact_friction}")
        self.contact_friction = contact_friction
        self.device = torch.device(device)
        channels = MODALITY_CHANNELS[self.settings.modality]
        self.net = PixelGraspNet(self.settings.backbone, channels, self.settings.angle_classes)
        self.net.load_state_dict(checkpoint["state_dict"])
        self.net.to(self.device).eval()

    @classmethod
    def untrained(
        cls, backbone: str, modality: str = "depth", jaw: JawGeometry = JawGeometry(), downsample: int = 2, **options
    ) -> "PixelGraspModel":
        """A randomly initialised net (for timing an architecture, and for tests)."""
        from grasp_cell.models.pixel_net import PixelGraspNet

        net = PixelGraspNet(backbone, MODALITY_CHANNELS[modality], ANGLE_CLASSES)
        checkpoint = {
            "state_dict": net.state_dict(),
            "backbone": backbone,
            "modality": modality,
            "angle_classes": ANGLE_CLASSES,
            "jaw": asdict(jaw),
            "downsample": downsample,
        }
        options.setdefault("name", f"pixel_{backbone}_{modality}")
        return cls(checkpoint, **options)

    @classmethod
    def from_file(cls, path: Path | str, **options) -> "PixelGraspModel":
        import torch

        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
        options.setdefault("name", Path(path).stem)
        return cls(checkpoint, **options)

    def plan(self, observation: Observation, max_grasps: int = 10) -> list[Grasp]:
        factor = self.settings.downsample
        intrinsics = observation.intrinsics
        u_min, v_min, u_max, v_max = observation.roi or (0, 0, intrinsics.width, intrinsics.height)
        u_min, v_min = max(int(u_min), 0), max(int(v_min), 0)
        u_max, v_max = min(int(u_max), intrinsics.width), min(int(v_max), intrinsics.height)
        if u_max - u_min < 2 * factor or v_max - v_min < 2 * factor or max_grasps < 1:
            return []
        # the net sees the roi and some context around it (training crops show the whole bin and beyond)
        margin = self.context * factor
        left, top = max(u_min - margin, 0), max(v_min - margin, 0)
        right, bottom = min(u_max + margin, intrinsics.width), min(v_max + margin, intrinsics.height)
        full_depth = observation.depth  # NaN or 0 where missing
        region = full_depth[top:bottom, left:right]
        # reduced as the training data was (grasp_cell.learn.pdg_dataset): a block with a hole is a hole
        depth = downsample_depth(np.where(region > 0, region, np.nan), factor, reduce="mean")
        color = None
        if observation.color is not None and self.settings.modality != "depth":
            color = nan_block_mean(observation.color[top:bottom, left:right], factor)
        quality, angle, width = self._predict(network_input(depth, color, self.settings.modality))

        # the full-resolution pixel at each block's centre (for an even factor, the one below right of it)
        block_u = left + factor * np.arange(depth.shape[1]) + factor // 2
        block_v = top + factor * np.arange(depth.shape[0]) + factor // 2
        in_roi = ((block_v >= v_min) & (block_v < v_max))[:, None] & ((block_u >= u_min) & (block_u < u_max))[None, :]
        # candidates: the best pixels, each with its best few angle classes; the depth check comes before
        # the spacing between grasps, so a pixel whose best angle would put a finger on the part (an L's
        # corner, a width too narrow) gives way to the next angle or pixel instead of ending the search
        rows, cols = self._grasp_pixels(quality, np.isfinite(depth) & in_roi, max(_MIN_CANDIDATES, 10 * max_grasps))
        if rows.size == 0:
            return []
        classes = np.argsort(-angle[:, rows, cols], axis=0)[:_ANGLES_PER_PIXEL]  # (A, n)
        rows, cols = np.broadcast_to(rows, classes.shape).ravel(), np.broadcast_to(cols, classes.shape).ravel()
        classes = classes.ravel()
        score = quality[rows, cols] * angle[classes, rows, cols]  # seed 003: best point, then best angle
        order = np.argsort(-score, kind="stable")
        order = order[score[order] >= self.min_quality]
        rows, cols, classes, score = rows[order], cols[order], classes[order], score[order]
        u, v = block_u[cols], block_v[rows]
        surface = np.where(full_depth[v, u] > 0, full_depth[v, u], depth[rows, cols])
        theta = classes * (math.pi / self.settings.angle_classes)
        max_opening = self.settings.jaw.max_opening
        opening = np.clip(width[classes, rows, cols] * max_opening, 0.0, max_opening)
        roi = (u_min, v_min, u_max, v_max)
        box = _footprint_box(full_depth, intrinsics, roi, self.settings.jaw)
        parallel = ParallelDepth.from_depth(full_depth, intrinsics, box)
        # depth-check the candidates best first, a chunk at a time, until enough spaced grasps pass
        approach = np.full(score.size, -np.inf)
        keep: list[int] = []
        for start in range(0, score.size, _CHECK_CHUNK):
            chunk = slice(start, start + _CHECK_CHUNK)
            args = (intrinsics, u[chunk], v[chunk], surface[chunk], theta[chunk], opening[chunk])
            reachable = self._approach_depths(parallel, *args)
            # a depth the fingers can reach may still be too shallow to hold: on a lying cylinder's upper
            # half the contacts slope out of the friction cone, and the labels never taught that grasp
            approach[chunk] = np.where(self._contacts_in_cone(full_depth, *args, reachable), reachable, -np.inf)
            feasible = np.nonzero(approach[: start + _CHECK_CHUNK] >= _DEPTH_MARGIN)[0]
            keep = _spaced(feasible, rows, cols, self.nms_size // 2, max_grasps)
            if len(keep) == max_grasps:
                break
        positions = intrinsics.deproject(u[keep], v[keep], surface[keep])
        positions[:, 2] += approach[keep]  # eq. 8: down the camera z axis, not the pixel's ray
        return [
            Grasp(
                Transform(planar_grasp_rotation(float(theta[n])), position),  # eq. 9
                GripperKind.PARALLEL,
                float(np.clip(score[n], 0.0, 1.0)),
                width=float(opening[n]),
                pixel=(int(u[n]), int(v[n])),
                model=self.name,
            )
            for n, position in zip(keep, positions)
        ]

    def _predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Qp (h, w), Qθ (K, h, w), W (K, h, w) in [0, 1] for an input (C, h, w) of any size."""
        import torch
        import torch.nn.functional as F

        from grasp_cell.models.pixel_net import SIZE_MULTIPLE

        torch.set_num_threads(self.threads)
        height, width = image.shape[1:]
        pad_bottom, pad_right = -height % SIZE_MULTIPLE, -width % SIZE_MULTIPLE
        with torch.inference_mode():
            batch = torch.from_numpy(image)[None].to(self.device)
            batch = F.pad(batch, (0, pad_right, 0, pad_bottom), mode="replicate")
            output = self.net(batch)
            maps = [torch.sigmoid(logits[0, :, :height, :width]).cpu().numpy() for logits in output]
        return maps[0][0], maps[1], maps[2]

    def _grasp_pixels(self, quality: np.ndarray, valid: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the best ``limit`` pixels by Qp that have depth and reach ``min_quality``, best first."""
        rows, cols = np.nonzero(valid & (quality >= self.min_quality))
        order = np.argsort(-quality[rows, cols], kind="stable")[:limit]
        return rows[order], cols[order]

    def _approach_depths(self, parallel: ParallelDepth, intrinsics, u, v, surface, theta, opening) -> np.ndarray:
        """Seed 003's grasp depth d [m] below the surface at pixels (u, v), (n,) each: the fingertips go down to
        ``tip_clearance`` above the highest point under the two finger footprints (L1 x L2 each, just outside
        the opening), at most L3 - 5 mm below the surface. Less than 5 mm: no grasp. The footprints are read
        in the parallel depth image, so a tall thing counts where it stands, not where its leaning ray lands.
        Unseen cells (shadows, holes) tell nothing: treating them as solid rejects the shadow every part casts
        beside itself, which measured worse (docs/pixel_grasp.md)."""
        jaw = self.settings.jaw
        # footprint samples one cell apart: (n, finger, along, across)
        along_count = max(2, math.ceil(jaw.finger_thickness * parallel.eta) + 1)
        across_count = max(2, math.ceil(jaw.finger_width * parallel.eta) + 1)
        along = np.linspace(-0.5, 0.5, along_count)[None, None, :, None] * jaw.finger_thickness
        across = np.linspace(-0.5, 0.5, across_count)[None, None, None, :] * jaw.finger_width
        sign = np.array([1.0, -1.0])[None, :, None, None]  # the two fingers
        centre = sign * (0.5 * opening + 0.5 * jaw.finger_thickness)[:, None, None, None]
        closing = closing_direction(theta)[:, None, None, None, :]  # (x, y) per unit length
        sideways = np.stack([-closing[..., 1], closing[..., 0]], axis=-1)
        offset = (centre + along)[..., None] * closing + across[..., None] * sideways  # [m], (..., 2)
        grasp_x, grasp_y, _ = intrinsics.deproject(u, v, surface).T
        grasp_x, grasp_y = grasp_x[:, None, None, None], grasp_y[:, None, None, None]
        under = parallel.at(grasp_x + offset[..., 0], grasp_y + offset[..., 1])
        highest = np.fmin.reduce(under.reshape(u.size, -1), axis=1)  # NaN only where nothing was seen
        highest = np.where(np.isnan(highest), np.inf, highest)
        return np.minimum(jaw.finger_length - _DEPTH_MARGIN, highest - self.tip_clearance - surface)

    def _contacts_in_cone(self, depth, intrinsics, u, v, surface, theta, opening, approach) -> np.ndarray:
        """(n,) bool: at fingertip level (``approach`` below the surface) each closing finger meets the
        outermost part of what stands above that level between the open fingers, and the surface there is
        steep enough for its normal to lie in the friction cone (the labels' check, ``grasp_cell.learn.pdg``):
        from the last pixel above fingertip level to the next seen pixel outside, the depth image falls by
        at least 1/mu times the distance between them. The distance is the shorter of the two pixels' spacing
        at the surface and of their points' spacing along the closing line: a side facing the optical axis is
        seen over several pixels, all of one spot; across a part's far edge the next pixel sees down past it,
        out of its shadow. At one pixel a vertical side passes when it stands more than 1/mu pixels tall
        (7 mm at 0.6 m); a lying cylinder gripped above its middle fails. No seen pixel outside: no evidence
        against."""
        n = u.size
        pixels_per_metre = 0.5 * (intrinsics.fx + intrinsics.fy) / surface  # (n,)
        reach = 0.5 * opening * pixels_per_metre  # [px] from the centre to each open finger's pad
        steps = np.arange(int(math.ceil(float(reach.max(initial=0.0)))) + 3)  # one pixel apart, and beyond
        closing = closing_direction(theta)  # (n, 2) in (u, v)
        tip_level = surface + np.maximum(approach, 0.0)  # camera z of the fingertips
        rows = np.arange(n)
        ok = np.isfinite(approach)
        for sign in (1.0, -1.0):
            su = np.rint(u[:, None] + sign * steps[None, :] * closing[:, None, 0]).astype(np.int64)
            sv = np.rint(v[:, None] + sign * steps[None, :] * closing[:, None, 1]).astype(np.int64)
            inside = (su >= 0) & (su < depth.shape[1]) & (sv >= 0) & (sv < depth.shape[0])
            z = depth[np.clip(sv, 0, depth.shape[0] - 1), np.clip(su, 0, depth.shape[1] - 1)]
            z = np.where(inside & (z > 0), z, np.nan)  # missing or off the image: unknown
            with np.errstate(invalid="ignore"):
                solid = (z < tip_level[:, None]) & (steps[None, :] <= reach[:, None])
            # the outermost solid sample (the centre pixel always is one: it lies above the fingertips)
            edge = steps.size - 1 - np.argmax(solid[:, ::-1], axis=1)
            beyond = np.isfinite(z) & (steps[None, :] > edge[:, None])
            outer = np.argmax(beyond, axis=1)
            with np.errstate(invalid="ignore"):
                drop = z[rows, outer] - z[rows, edge]
            pixel_span = (outer - edge) / pixels_per_metre  # [m]
            points = intrinsics.deproject(su[rows, [outer, edge]], sv[rows, [outer, edge]], z[rows, [outer, edge]])
            point_span = np.abs(np.einsum("ni,ni->n", points[0, :, :2] - points[1, :, :2], closing))
            span = np.fmin(pixel_span, point_span)  # [m]
            steep = drop * self.contact_friction >= span
            ok &= ~beyond.any(axis=1) | steep
        return ok


def register_pixel_models(folder: Path | None = None) -> list[str]:
    """Make the registry list ``pixel_<backbone>_<modality>`` for exactly the weights files in ``folder``
    (default: ``models_dir()``); returns their names. Each factory loads its weights when called, from the
    models folder of that moment."""
    return register_weights_files(folder or models_dir(), WEIGHTS_NAME, _factory, _registered)


def _factory(name: str):
    return weights_file_factory(name, GripperKind.PARALLEL, PixelGraspModel)


_registered: set[str] = set()  # the names register_pixel_models added


def _footprint_box(depth: np.ndarray, intrinsics, roi: tuple[int, int, int, int], jaw: JawGeometry) -> tuple[int, ...]:
    """The pixels whose points a finger of a grasp inside ``roi`` can stand among: the roi grown by the jaw's
    reach from its centre to a finger's far corner, seen at the nearest depth in the roi."""
    u_min, v_min, u_max, v_max = roi
    region = depth[v_min:v_max, u_min:u_max]
    with np.errstate(invalid="ignore"):
        nearest = np.nanmin(np.where(region > 0, region, np.nan))
    reach = math.hypot(0.5 * jaw.max_opening + jaw.finger_thickness, 0.5 * jaw.finger_width)  # [m]
    margin = math.ceil(reach * max(intrinsics.fx, intrinsics.fy) / float(nearest)) + 1  # [px]
    return u_min - margin, v_min - margin, u_max + margin, v_max + margin


def _spaced(order: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius: int, count: int) -> list[int]:
    """The first ``count`` candidates of ``order`` (best first) lying more than ``radius`` net pixels (Chebyshev)
    from every one taken before: ranked grasps spread over the parts instead of crowding one spot."""
    taken: list[int] = []
    for n in order:
        if len(taken) == count:
            break
        if all(max(abs(rows[n] - rows[m]), abs(cols[n] - cols[m])) > radius for m in taken):
            taken.append(int(n))
    return taken
