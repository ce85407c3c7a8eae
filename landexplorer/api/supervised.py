"""A worker process of ``landexplorer serve`` ends with the process that supervises it.

The supervisor (``cli/workers.py``) names itself in the environment its workers inherit.
Each worker asks Linux to send it SIGTERM when the supervisor ends, however it ends: a
worker left behind by a supervisor killed with SIGKILL would keep its listening socket,
and no new ``serve`` could bind the port.
"""

from __future__ import annotations

import contextlib
import os
import signal

#: Names the supervising process to its workers.
SUPERVISOR_ENV = "LANDEXPLORER_SUPERVISOR_PID"


def end_with_supervisor() -> None:
    """In a worker: be sent SIGTERM when the supervising process ends (Linux), or end now if
    it has already gone. Does nothing in a process ``serve`` did not start as a worker."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit():
        return
    if os.getppid() == 1:  # the supervisor ended before this worker started: end too
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if int(supervisor) != os.getppid():
        return  # not one of its workers (a process that inherited the environment)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != int(supervisor):  # it ended before the line above
        os.kill(os.getpid(), signal.SIGTERM)
