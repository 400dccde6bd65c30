"""The evaluation's and the fairness audit's stores."""

from __future__ import annotations

# the analysis zone's stores: not in evaluation.py, whose bytes are the assets' code version
EVALUATION_TABLE, FAIRNESS_TABLE = "evaluation", "fairness_audit"
