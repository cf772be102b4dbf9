"""Capped exponential back-off and "log an outage once" for the loops that talk to Redis.

A loop that loses Redis logs one warning, then retries after 0.1 s, 0.2 s, 0.4 s ... up to
:data:`MAX_DELAY_S` (with ±20 % jitter), and logs one line when Redis answers again::

    outage = Outage(logger, "bus consumer")
    while running:
        try:
            ...                          # talk to Redis
            outage.recovered()
        except CONNECTION_ERRORS as exc:
            await asyncio.sleep(outage.failed(exc))
"""

from __future__ import annotations

import logging
import random
import time

__all__ = ["Outage", "FIRST_DELAY_S", "MAX_DELAY_S"]

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0


class Outage:
    """Tracks one loop's Redis outage: one log line when it starts, one when it ends.

    Args:
        logger: where the two lines go.
        what: names the loop in the lines, e.g. ``"bus consumer"``.
        first_delay_s: the first back-off delay, seconds.
        max_delay_s: the cap of the back-off delay, seconds.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self.logger = logger
        self.what = what
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.failures = 0
        self.since = 0.0

    @property
    def down(self) -> bool:
        """True between a :meth:`failed` and the next :meth:`recovered`."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; return how long to wait before the next one, seconds.

        Logs a warning on the first failure of an outage only. An outage is Redis unreachable,
        or refusing commands (OOM, READONLY): ``exc`` names which.
        """
        if self.failures == 0:
            self.since = time.monotonic()
            self.logger.warning(
                "%s: Redis unreachable (%s: %s); retrying with back-off",
                self.what,
                type(exc).__name__,
                exc,
            )
        self.failures += 1
        delay = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(self.failures - 1, 16))
        return delay * random.uniform(0.8, 1.2)

    def recovered(self) -> None:
        """Record a successful attempt; logs once when it ends an outage."""
        if self.failures:
            self.logger.info(
                "%s: Redis reachable again after %.1f s", self.what, time.monotonic() - self.since
            )
            self.failures = 0
