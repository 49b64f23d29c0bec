"""Benchmarks, attempt logs and metrics (no ROS)."""
