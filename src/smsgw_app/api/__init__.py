"""The HTTP API: thin Litestar controllers over the core's use cases."""
