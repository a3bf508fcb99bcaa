"""``python -m ace_assets.demo --out DIR [--full] [--seed N]``: write the demo raw data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ace_assets.demo.generate import generate_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ace_assets.demo",
        description="Write synthetic Miniscope V4 + Neuralynx demo data with ground truth.",
    )
    parser.add_argument("--out", required=True, type=Path, help="data_path of the demo project")
    parser.add_argument("--full", action="store_true", help="608x608 movie, 32 kHz ephys")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace existing demo lines")
    args = parser.parse_args(argv)
    try:
        result = generate_demo(
            args.out, full=args.full, seed=args.seed, overwrite=args.overwrite, verbose=True
        )
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"demo data in {result['out_dir']} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
