"""A run with one step in the ``ace_heavy`` pool, as a notebook or a run worker starts it.

``python -m ace_assets_tests.helpers.pool_wait OUT [in_process|multiprocess]`` with
``DAGSTER_HOME`` set: the step writes ``OUT`` when it gets its slot. It does not free
dead runs itself, so while another run's dead process holds the slot, this run waits.
"""

import os
import sys
from pathlib import Path

import dagster as dg

from ace_assets.defs.line_assets import HEAVY_POOL
from ace_assets.defs.run_health import local_run_tags

ENV_OUT = "ACE_POOL_WAIT_OUT"


@dg.asset(pool=HEAVY_POOL)
def heavy_step() -> None:
    Path(os.environ[ENV_OUT]).write_text("ran")


def multiprocess_job() -> dg.JobDefinition:
    """Reconstructable: the run worker's executor starts the step in a child process."""
    return dg.Definitions(
        assets=[heavy_step],
        jobs=[dg.define_asset_job("pool_wait_job")],
        executor=dg.multiprocess_executor,
    ).resolve_job_def("pool_wait_job")


def main(argv: list[str]) -> int:
    os.environ[ENV_OUT] = argv[0]
    executor = argv[1] if len(argv) > 1 else "in_process"
    with dg.DagsterInstance.get() as instance:
        if executor == "multiprocess":
            result = dg.execute_job(
                dg.reconstructable(multiprocess_job), instance=instance, tags=local_run_tags()
            )
        else:
            result = dg.materialize([heavy_step], instance=instance, tags=local_run_tags())
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
