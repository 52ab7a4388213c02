"""Named crash points, for the crash-and-re-run test only (tests/pipeline/test_crash_rerun.py).

With `LIFEVAULT_TEST_CRASH_AT=<name>` (or `<name>#<n>`) in the environment, the process kills itself with
SIGKILL the first (n-th) time it reaches `reached("<name>")`: a real crash at a chosen place, nothing
flushed, no handler run. Unset, as it always is outside that test, a call costs one environment lookup
and does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "LIFEVAULT_TEST_CRASH_AT"

_seen: dict[str, int] = {}  # name -> times reached in this process (only counted while ENV names it)


def reached(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.partition("#")
    if want != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
