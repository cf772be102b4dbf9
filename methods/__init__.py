"""Example RPC methods, callable by their names: ``add``, ``echo``, ``plus``, ``sleep``, ...

Every function defined in this package (and its submodules) is a JSON-RPC method, named by
its dotted path below ``methods``: ``echo`` here, ``greetings.greet`` in greetings.py.
"""

import logging
import time
from typing import Any, NoReturn

logger = logging.getLogger(__name__)


def add(a: Any, b: Any) -> Any:
    """Return ``a + b``."""
    return a + b


def echo(txt: Any) -> Any:
    """Return ``txt`` unchanged."""
    return txt


def plus(*args: Any) -> Any:
    """Return the sum of all the arguments (0 for none)."""
    return sum(args)


def sleep(seconds: float) -> float:
    """Sleep for ``seconds`` (a number of seconds), then return it."""
    time.sleep(seconds)
    return seconds


def exception(*args: Any) -> NoReturn:
    """Raise a RuntimeError carrying the arguments (answered -32000)."""
    raise RuntimeError(*args)


def warnlog(msg: str) -> None:
    """Log ``msg`` as a warning from the worker process; return None."""
    logger.warning(msg)
