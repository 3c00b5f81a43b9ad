"""`ButlerMetrics`: how many datasets a butler read and wrote, and the time it took."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ButlerMetrics"]


class ButlerMetrics(BaseModel):
    """Counts and times of a butler's reads and writes, as the reference keeps them.

    Parameters
    ----------
    time_in_put : `float`
        Seconds spent in successful ``put`` calls.
    time_in_get : `float`
        Seconds spent in successful reads (``get`` and deferred loads).
    n_get : `int`
        Number of successful reads.
    n_put : `int`
        Number of successful writes.

    Notes
    -----
    A `QuantumBackedButler` counts from the place it appends its events, so
    ``n_get`` is the number of successful ``input_read`` and
    ``deferred_loaded`` events, ``n_put`` the number of ``output_written``
    events, and the times are the sums of their ``duration_ns``. A failed
    read or write counts nothing (as in the reference).
    """

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    time_in_put: float = 0.0
    time_in_get: float = 0.0
    n_get: int = 0
    n_put: int = 0

    def reset(self) -> None:
        """Set every count and time back to zero."""
        self.time_in_put = 0.0
        self.time_in_get = 0.0
        self.n_get = 0
        self.n_put = 0

    def increment_get(self, duration: float) -> None:
        """Count one successful read.

        Parameters
        ----------
        duration : `float`
            Its duration in seconds.
        """
        # Straight into the field storage: pydantic's __setattr__ costs about a
        # microsecond, a measurable share of a read (the fields are plain
        # numbers, so there is nothing to validate).
        fields = self.__dict__
        fields["n_get"] += 1
        fields["time_in_get"] += duration

    def increment_put(self, duration: float) -> None:
        """Count one successful write.

        Parameters
        ----------
        duration : `float`
            Its duration in seconds.
        """
        fields = self.__dict__
        fields["n_put"] += 1
        fields["time_in_put"] += duration
