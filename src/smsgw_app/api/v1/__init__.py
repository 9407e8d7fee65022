"""The versioned API: every route under /v1 takes `Authorization: Bearer <key>`,
and a customer's routes act for the key's customer, never for a body field."""
