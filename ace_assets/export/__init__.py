"""Results in the field's own formats, for sharing and for other tools (no Dagster)."""
