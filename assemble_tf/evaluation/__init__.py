"""Evaluation: streaming classification metrics, calibration, plots."""
