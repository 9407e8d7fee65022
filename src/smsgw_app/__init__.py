"""smsgw_app: configuration, the composition root, the HTTP API, workers and the CLI."""
