"""Evaluation: metrics (numpy), reports on data, and PNG plots."""
