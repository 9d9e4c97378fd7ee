"""Pieces several operation types share: triggers, catalog questions, constraints, restores."""
