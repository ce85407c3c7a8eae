"""Which process owns a piece of unfinished work, and whether that process still runs.

Work that a crash can leave half done (a staged table, an upload job, an upload's
temporary folder) is tagged with its owner: ``host:boot:pid:start``, the machine, the
kernel's boot id, the process id and the process's start time (in clock ticks since
boot, from ``/proc``). A process id alone is not enough: after a restart the same id is
soon used again by another process. With the start time, a tag names one process only.

Recovery (at start-up, in any number of processes at once) only touches work whose
owner is gone; work of a live process, this one included, is left alone.
"""

from __future__ import annotations

import functools
import os
import re
import socket

_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}:[0-9a-f]{0,36}:[0-9]{1,10}:[0-9]{0,20}$")


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip().replace("-", "")[:16]
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot; '' when there is no such
    process or no /proc to ask."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return ""
    # the command name (field 2) is in brackets and may hold spaces: count after it
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64] or "host"


@functools.cache
def _tag_for(pid: int) -> str:
    return f"{_host()}:{_boot_id()}:{pid}:{_start_time(pid)}"


def this_process() -> str:
    """The owner tag of the calling process."""
    return _tag_for(os.getpid())


def is_owner_tag(text: str) -> bool:
    return bool(_TAG.match(text))


def is_alive(tag: str) -> bool:
    """Whether the process a tag names may still be running.

    ``False`` only when it is certainly gone: same machine, and either another boot or no
    process with that id and start time. A tag from another machine (a shared folder) or
    one that cannot be read counts as alive: its work is never taken away from it.
    """
    if not is_owner_tag(tag):
        return True
    host, boot, pid_text, start = tag.split(":")
    if host != _host():
        return True
    if boot and _boot_id() and boot != _boot_id():
        return False  # the machine has restarted since
    pid = int(pid_text)
    if pid == os.getpid():
        return tag == this_process()
    if start:
        now = _start_time(pid)
        if now:
            return now == start
        if os.path.isdir("/proc/self"):  # /proc works, so there is no such process
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user has that id
    return True
