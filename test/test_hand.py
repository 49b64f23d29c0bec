"""The three-finger hand and seed 004's floating grasp lab (real PyBullet, no gravity)."""

import math

import numpy as np
import pybullet
import pytest

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
    hand.place(Transform.identity(), closed=True)
    tips = {f: pybullet.getLinkState(hand.hand, joints[joint_name(f, "distal")], **kwargs)[4] for f in FINGERS}
    hand.place(Transform.identity())
    open_tips = {f: pybullet.getLinkState(hand.hand, joints[joint_name(f, "distal")], **kwargs)[4] for f in FINGERS}
    assert tips["a"][1] > open_tips["a"][1] and tips["b"][1] < open_tips["b"][1] and tips["c"][1] < open_tips["c"][1]


def test_qualified_means_clear_when_open_and_overlapping_when_closed(hand):
    hand.set_object(PartSpec("sphere", (0.06,), 0.1))
    assert hand.qualified(Transform(DOWN, (0.0, 0.0, -0.02)))  # between the fingers
    assert not hand.qualified(Transform(DOWN, (0.0, 0.0, 0.4)))  # far away: the closed hand misses it
    assert not hand.qualified(Transform(DOWN, (0.0, 0.0, -0.07)))  # the palm would sit in it
    assert hand.distance(Transform(DOWN, (0.0, 0.0, -0.07))) < 0.0 < hand.distance(Transform(DOWN, (0.0, 0.0, 0.2)))
    poses = hand.sample_qualified(np.random.default_rng(0), slides=10)
    assert poses and all(hand.qualified(pose) for pose in poses)


def test_trials_tell_robust_from_knocked_away(hand):
    rng = np.random.default_rng(1)
    hand.set_object(PartSpec("sphere", (0.06,), 0.1))
    held = hand.trial(Transform(DOWN, (0.0, 0.0, -0.02)), rng)
    assert held.label is GraspLabel.ROBUST, held.detail
    # at the fingertips' reach the sphere is flicked away while the fingers close
    flicked = hand.trial(Transform(DOWN, (0.0, 0.0, 0.05)), rng)
    assert flicked.label is GraspLabel.FAILED and "knocked away" in flicked.detail


def test_random_rotations_are_proper_and_spread():
    rng = np.random.default_rng(2)
    rotations = np.array([random_rotation(rng) for _ in range(500)])
    assert np.allclose(np.linalg.det(rotations), 1.0)
    assert np.abs(rotations[:, :, 2].mean(axis=0)).max() < 0.1  # z axes all round the sphere
