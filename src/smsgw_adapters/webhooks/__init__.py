"""Status webhooks to customers: signing (Standard Webhooks) and the address guard."""
