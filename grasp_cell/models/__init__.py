"""Grasp models behind one interface, found by name."""

from grasp_cell.models.base import GraspModel, Observation, available_models, create_model, register

__all__ = ["GraspModel", "Observation", "available_models", "create_model", "register"]
