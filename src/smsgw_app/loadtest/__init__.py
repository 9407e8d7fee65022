"""`smsgw loadtest`: an HTTP load generator for POST /sms/send (see the README's Commands)."""
