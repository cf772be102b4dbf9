"""What methods reuse: errors with their own JSON-RPC code, the params-schema decorator,
scheduled jobs.

Import from here in a methods module::

    from kit import JsonRpcError, params_schema, scheduled, current_job
"""

from executor.errors import JsonRpcError
from executor.params import params_schema
from executor.scheduled import current_job, scheduled

__all__ = sorted(["JsonRpcError", "current_job", "params_schema", "scheduled"])
