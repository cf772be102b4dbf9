"""Example: a counter in Redis through ``kit.redis`` (``SBUSR_REDIS_URL``, or 127.0.0.1:6379/0).

The toolkit is imported inside the function to keep worker start fast (see ``demo_http``).
"""

COUNTER_KEY_PREFIX = "sbusr:demo:counter:"


def incr(name: str, amount: int = 1) -> int:
    """Add ``amount`` (an integer) to the counter ``name``; return its new value."""
    from kit.redis import get_redis

    return int(get_redis().incr(COUNTER_KEY_PREFIX + name, amount))
