"""Moved to :mod:`catalog.openrpc` (``rpc.discover`` is in :mod:`catalog.rpc_methods`).

A re-export until ``tests/test_discovery.py`` imports from :mod:`catalog.openrpc`; delete it then.
"""

from __future__ import annotations

from catalog.openrpc import OPENRPC_VERSION, build_document, describe_method, schema_for_hint

__all__ = ["OPENRPC_VERSION", "build_document", "describe_method", "schema_for_hint"]
