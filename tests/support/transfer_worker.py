"""Run one transfer in its own process: ``python transfer_worker.py URL BATCH LOG...``.

Used by the tests that kill a transfer with SIGKILL and that run several
transfers into one registry at once.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from qbb_events import Registry, transfer_run


def main() -> None:
    url, batch, *logs = sys.argv[1:]
    # Several workers start together: each waits for the test's go signal.
    start = os.environ.get("QBB_TEST_START_FILE")
    while start and not Path(start).exists():
        time.sleep(0.001)
    with Registry.open(url) as registry:
        report = transfer_run(registry, logs, batch_size=int(batch), progress=False)
    print(report.quanta_new, report.quanta_existing, len(report.conflicts), flush=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
