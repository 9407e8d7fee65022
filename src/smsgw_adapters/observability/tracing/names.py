"""The names smsgw's spans and their attributes carry (docs/observability.md)."""

TRACER_NAME = "smsgw"

# Span attributes, namespaced.
USER_ID = "smsgw.user_id"
SMS_IDENTIFIER = "smsgw.sms_identifier"
TYPE = "smsgw.type"
OPERATOR = "smsgw.operator"
OUTCOME = "smsgw.outcome"
RECIPIENTS = "smsgw.recipients"
DONE = "smsgw.done"
FAILED = "smsgw.failed"
SKIPPED = "smsgw.skipped"

# Span names.
PUBLISH_SPAN = "sms.publish"
DELIVER_SPAN = "sms.deliver"
OPERATOR_SPAN = "sms.operator.send"
