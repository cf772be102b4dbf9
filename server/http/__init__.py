"""The HTTP layer of the server: the route table and its handlers, one module per area::

    server.http.app         the one route table (Services -> routes -> Application)
    server.http.base        the base handler: auth, request ids, JSON bodies, the JSON error writer
    server.http.errors      RestError and the one mapping from domain errors to HTTP statuses
    server.http.access_log  one log line per request (logger ``sbusr.access``)
    server.http.rpc         POST /rpc (alias POST /): JSON-RPC over HTTP
    server.http.system      /sys/reset, /sys/status, /health_check, /ready
    server.http.docs        /openrpc.json and the /docs page
    server.http.metrics     /metrics
    server.http.flow        POST /api/flow
    server.http.jobs        /api/jobs...

Handlers take their dependencies as route kwargs (``initialize()``), never from the
application's settings.
"""
