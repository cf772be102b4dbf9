"""Tracing on or off (``SBUSR_TRACING``): the one switch the call sites check.

While tracing is off (the default) :data:`active` is None and nothing of OpenTelemetry is
imported: each call site pays one ``is not None`` test. :func:`configure` turns it on: it
builds a tracer provider from the standard ``OTEL_*`` variables, read by the SDK itself
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_BSP_*``, ...)
but for the exporter choice, read here:

=========================  ===========================================================
``OTEL_TRACES_EXPORTER``   exporters, comma-separated (default ``otlp``)
=========================  ===========================================================
``otlp``                   OTLP over HTTP/protobuf (``otlp_proto_http`` too), batched
``console``                one JSON object per span on standard output, batched
``none``                   no exporter (spans are made, not sent anywhere)
=========================  ===========================================================

The service name defaults to ``sbusr`` when ``OTEL_SERVICE_NAME`` (or ``service.name`` in
``OTEL_RESOURCE_ATTRIBUTES``) does not set one. What spans are made: :mod:`server.spans`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.spans import CallSpans

__all__ = ["EXPORTERS", "TracingError", "active", "configure", "shutdown"]

logger = logging.getLogger(__name__)

#: The values ``OTEL_TRACES_EXPORTER`` may list.
EXPORTERS = ("otlp", "otlp_proto_http", "console", "none")

#: The span recorder while tracing is on; None while it is off.
active: CallSpans | None = None


class TracingError(ValueError):
    """``OTEL_TRACES_EXPORTER`` names an exporter sbusr does not know."""


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` lists (default ``otlp``).

    Raises:
        TracingError: an unknown name (the message names the variable and the value).
    """
    text = environ.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER={text!r}: unknown exporter {unknown[0]!r} "
            f"(expected one of {', '.join(EXPORTERS)})"
        )
    return names


def configure(enabled: bool, environ: Mapping[str, str] | None = None) -> CallSpans | None:
    """Turn tracing on when ``enabled``; return the span recorder (also :data:`active`).

    Args:
        enabled: ``Settings.tracing`` (``SBUSR_TRACING``); False leaves tracing off and
            imports nothing.
        environ: where ``OTEL_TRACES_EXPORTER`` is read; ``os.environ`` when None (the SDK
            reads its other ``OTEL_*`` variables from ``os.environ``).

    Returns:
        The :class:`server.spans.CallSpans` (hand it to ``Pool.tracer``), or None when off.

    Raises:
        TracingError: ``OTEL_TRACES_EXPORTER`` names an unknown exporter.
    """
    global active
    if not enabled:
        return None
    names = _exporter_names(os.environ if environ is None else environ)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from server import __version__
    from server.spans import CallSpans

    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "sbusr"}))
    provider = TracerProvider(resource=resource)
    for name in dict.fromkeys(names):
        if name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name in ("otlp", "otlp_proto_http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    active = CallSpans(provider)
    logger.info("tracing on: exporters %s", ", ".join(names) or "none")
    return active


async def shutdown() -> None:
    """Export the spans still buffered, stop the exporters and turn tracing off.

    Runs the SDK's blocking flush in a thread; does nothing while tracing is off.
    """
    global active
    spans, active = active, None
    if spans is not None:
        await asyncio.to_thread(spans.shutdown)
