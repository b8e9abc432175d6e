"""Hyper-parameter search on Optuna: each trial an ordinary fit run of a workflow (docs/search.md)."""
