"""Results in the field's exchange formats (NWB, EDF+)."""
