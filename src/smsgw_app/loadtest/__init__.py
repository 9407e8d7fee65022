"""`smsgw loadtest`: an HTTP load generator for POST /sms/send (see docs/operations.md)."""
