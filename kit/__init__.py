"""What methods reuse: errors with their own JSON-RPC code, the params-schema decorator.

Import from here in a methods module::

    from kit import JsonRpcError, params_schema
"""

from executor.errors import JsonRpcError
from executor.params import params_schema

__all__ = sorted(["JsonRpcError", "params_schema"])
