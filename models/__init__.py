"""Scorers: the heuristic, the trained classifier, registry access and the fallback chain."""
