"""An in-process run with one step in the ``ace_heavy`` pool, as a notebook would start it.

``python -m ace_assets_tests.helpers.pool_wait OUT`` with ``DAGSTER_HOME`` set: the step
writes ``OUT`` when it gets its slot. It does not free dead runs itself, so while another
run's dead process holds the slot, this run waits.
"""

import sys
from pathlib import Path

import dagster as dg

from ace_assets.defs.line_assets import HEAVY_POOL
from ace_assets.defs.run_health import local_run_tags


def main(argv: list[str]) -> int:
    out = Path(argv[0])

    @dg.asset(pool=HEAVY_POOL)
    def heavy_step() -> None:
        out.write_text("ran")

    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([heavy_step], instance=instance, tags=local_run_tags())
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
