"""The sbusr server: Tornado application, JSON-RPC core, system routes."""

__version__ = "0.1.0"
