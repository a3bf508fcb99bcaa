"""Dagster wiring: assets, checks, sensors and the resources that carry a deployment's paths."""

from ace_assets.defs import pool_wait_fix, slot_claim_fix

pool_wait_fix.apply()
slot_claim_fix.apply()
