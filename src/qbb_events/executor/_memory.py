"""Peak resident memory of one quantum, in a worker that runs many.

``getrusage`` reports a process's lifetime peak, which in a long-lived worker
is the peak of its largest quantum so far. Linux can reset the peak (writing
``5`` to ``/proc/self/clear_refs`` resets ``VmHWM``, which ``ru_maxrss``
reads), so the peak read at the end of a quantum is that quantum's own.
"""

from __future__ import annotations

__all__ = ["reset_peak_memory"]

_CLEAR_REFS = "/proc/self/clear_refs"


def reset_peak_memory() -> bool:
    """Reset this process's peak resident memory to its current size.

    Returns
    -------
    reset : `bool`
        Whether the platform allowed it; if not, the peak stays the process's
        lifetime peak.
    """
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
