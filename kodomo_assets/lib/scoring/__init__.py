"""Scoring: the linked table, indicators, the risk model, ranking, evaluation, item worth."""
