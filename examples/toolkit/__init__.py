"""Toolkit examples: a methods package to serve on its own (``run.py --methods examples/toolkit``).

Not shipped in ``methods/``: ``demo_http.fetch_status`` fetches any URL its caller names (an
open proxy into your network) and ``demo_db``/``demo_redis`` write to your database and Redis.
See examples/README.md.
"""
