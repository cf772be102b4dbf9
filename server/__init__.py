"""The sbusr server: the transport-free JSON-RPC core and what serves it.

::

    server.main           serve(): start and stop the parts in one ordered lifecycle
    server.jsonrpc        the JSON-RPC 2.0 core: payload in, response out (over a CallSink)
    server.openrpc_cache  the OpenRPC document of the current generation (rpc.discover)
    server.metrics        the Prometheus metrics of one server (Metrics, CallMetrics)
    server.tracing        SBUSR_TRACING: the switch; server.spans makes the spans
    server.http           the HTTP layer: the route table and one handler module per area
    server.bus            the Redis Streams bus: consumer, upkeep, flow start
    server.scheduler      the job scheduler: service, run state, leases
"""

__version__ = "0.1.0"
