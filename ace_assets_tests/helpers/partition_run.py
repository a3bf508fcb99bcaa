"""One partition's run of ``process_line`` in its own process, as Dagster's run launcher does.

``python -m ace_assets_tests.helpers.partition_run LINE PATHS_JSON`` with ``DAGSTER_HOME`` set: the
backfill test starts one per line at once, so the runs compete for the ``ace_heavy`` pool.
"""

import json
import sys

import dagster as dg

from ace_assets.definitions import process_line_job


def main(argv: list[str]) -> int:
    line, paths = argv[0], json.loads(argv[1])
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(process_line_job),
            instance=instance,
            run_config={"resources": {"paths": {"config": paths}}},
            tags={"dagster/partition": line, "dagster/backfill": "demo-backfill"},
            raise_on_error=False,
        )
        print(json.dumps({"line": line, "run_id": result.run_id, "success": result.success}))
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
