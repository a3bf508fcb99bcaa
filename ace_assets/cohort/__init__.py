"""Across lines: the cohort table (and comparisons between groups of lines)."""
