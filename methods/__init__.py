"""Example RPC methods, callable by their names: ``add``, ``echo``, ``plus``, ``sleep``, ...

Every function defined in this package (and its submodules) is a JSON-RPC method, named by
its dotted path below ``methods``: ``echo`` here, ``greetings.greet`` in greetings.py.
"""

import logging
import time

logger = logging.getLogger(__name__)


def add(a, b):
    """Return ``a + b``."""
    return a + b


def echo(txt):
    """Return ``txt`` unchanged."""
    return txt


def plus(*args):
    """Return the sum of all the arguments (0 for none)."""
    return sum(args)


def sleep(seconds):
    """Sleep for ``seconds`` (a number of seconds), then return it."""
    time.sleep(seconds)
    return seconds


def exception(*args):
    """Raise a RuntimeError carrying the arguments (answered -32000)."""
    raise RuntimeError(*args)


def warnlog(msg):
    """Log ``msg`` as a warning from the worker process; return None."""
    logger.warning(msg)
