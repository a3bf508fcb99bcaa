"""A process that publishes one folder again and again, or dies mid-write.

``python -m ace_assets_tests.helpers.publish_worker FOLDER commit N``: N publications of
``FOLDER``, each holding two files with the same token (a torn read sees them differ).
``... FOLDER die``: starts a publication, writes half a result, and kills itself (SIGKILL).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ace_assets.io.publish import publishing


def main() -> None:
    folder, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "die":
        with publishing(folder) as tmp:
            (tmp / "a.txt").write_text("half a result")
            os.kill(os.getpid(), signal.SIGKILL)
    for i in range(int(sys.argv[3])):
        token = f"{os.getpid()}-{i}"
        with publishing(folder) as tmp:
            (tmp / "a.txt").write_text(token)
            (tmp / "b.txt").write_text(token)


if __name__ == "__main__":
    main()
