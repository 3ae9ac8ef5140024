"""The web core every flow shares: sessions, security, errors, outbound HTTP, the launch context
(docs/architecture.md)."""
