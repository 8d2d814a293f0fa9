"""tinyzoo's warnings: the ``tinyzoo`` logger, printed as ``tinyzoo: warning: ...`` on stderr.

Library code logs through ``logging.getLogger("tinyzoo")`` (:data:`logger`). Unless that
logger already had handlers when this module was imported, it gets one handler that writes
each record as one line on the current ``sys.stderr`` and does not pass records on to the
root logger, so a warning is printed once, in the CLI and in a notebook alike. To route
tinyzoo's records into your own logging instead::

    import logging
    log = logging.getLogger("tinyzoo")
    log.handlers.clear()
    log.propagate = True
"""

from __future__ import annotations

import logging
import sys

from tinyzoo.errors import one_line

LOGGER_NAME = "tinyzoo"
logger = logging.getLogger(LOGGER_NAME)


class OneLineHandler(logging.Handler):
    """``tinyzoo: <level>: <message>`` on one line of whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{LOGGER_NAME}: {record.levelname.lower()}: {one_line(record.getMessage())}\n")
        except Exception:
            self.handleError(record)


def configure(level: int = logging.WARNING) -> None:
    """Print tinyzoo's records of ``level`` and above as one line each on stderr (what the CLI uses)."""
    if not any(isinstance(h, OneLineHandler) for h in logger.handlers):
        logger.addHandler(OneLineHandler())
        logger.propagate = False
    logger.setLevel(level)


if not logger.handlers:
    configure()
