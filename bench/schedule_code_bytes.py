"""Record the code size of tuned records in a schedule database (the flash objective).

``tvmq tune`` records the code bytes of every candidate it measures; databases
tuned before it did (the shipped ``schedules/qemu-cortex-m*``) are measured
here once: each kernel's default schedule, and its records fastest first up to
the first whose code is within 5 % of the default's (builds never look past
it). Only compilation, no board: about a second per kernel schedule.

    python -m bench.schedule_code_bytes [--targets qemu-cortex-m4 ...] [--work-dir DIR]
"""

from __future__ import annotations

import argparse

from tvmq.targets import load_target
from tvmq.tune.code_size import measure_database
from tvmq.tune.database import shipped_directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", nargs="+", default=["qemu-cortex-m4", "qemu-cortex-m7", "qemu-cortex-m55"]
    )
    parser.add_argument("--work-dir", help="a database directory (one target) instead")
    args = parser.parse_args()
    for name in args.targets:
        target = load_target(name)
        directory = args.work_dir or shipped_directory(target)
        compiled = measure_database(directory, target)
        print(f"{name}: {compiled} kernel schedules compiled, sizes in {directory}")


if __name__ == "__main__":
    main()
