"""The Celery side of bench/bus_bench.py: one ``echo`` task, broker and results on Redis.

The broker/backend URL comes from ``SBUSR_BENCH_CELERY_URL`` (set by the bench before it
starts the worker and imports this module).
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ.get("SBUSR_BENCH_CELERY_URL", "redis://127.0.0.1:6379/0")

app = Celery("sbusr_bench", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    result_expires=60,
    task_ignore_result=False,
)


@app.task(name="echo")
def echo(txt: str) -> str:
    """Return ``txt`` unchanged (the same work as sbusr's ``methods.echo``)."""
    return txt
