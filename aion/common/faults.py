"""Test fault points: a test names one in `AION_TEST_FAULT` (in the server's environment) to
make the process die there at once, as a crash would (no cleanup; only what was committed
survives), deterministically. Unset outside tests; a point costs one environment lookup."""

from __future__ import annotations

import os
import sys

FAULT_ENV = "AION_TEST_FAULT"
FAULT_EXIT_CODE = 97  # how a test tells the fault point's exit from any other


def fault_point(name: str) -> None:
    """Exit the process now if the test asked for a crash at `name`."""
    if os.environ.get(FAULT_ENV) == name:
        sys.stderr.write(f"test fault point {name}: exiting\n")
        sys.stderr.flush()
        os._exit(FAULT_EXIT_CODE)
