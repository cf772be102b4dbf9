"""The bottom layer every sbusr package shares: what crosses a process, the network or Redis.

Standard library only (``wire.schema.LazyValidator`` imports jsonschema at its first use);
imports nothing of sbusr. ``executor``, ``server``, ``busclient`` and
``kit`` all take these from here, so each exists once::

    wire.errors   the JSON-RPC error tree (JsonRpcError and its codes) and its one encoder
    wire.codec    the strict JSON decoder and the compact JSON encoder
    wire.names    method names: the reserved ``rpc.`` prefix, reachability, instance ids
    wire.keys     every Redis key name, built from one prefix (bus, done records, peers,
                  replies, job leases, locks)
    wire.redact   masking of secrets (URL passwords, credential query values, headers)
    wire.schema   JSON Schema validation errors as ``[{"path", "message"}]`` lists; a
                  validator of a fixed schema built on first use
"""
