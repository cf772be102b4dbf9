"""What the workers report about the user's methods (they run inside worker processes).

The server process never imports the user's code; it asks a worker through the internal
``rpc.*`` methods (:mod:`catalog.rpc_methods`), which answer from the imported methods package::

    catalog.openrpc         the OpenRPC document of every reachable method (rpc.discover)
    catalog.declared_jobs   the @scheduled declarations of the methods (rpc.scheduled_jobs)
    catalog.rpc_methods     the worker-side rpc.* methods, registered with executor.internal
"""
