"""What the pages read from and write to the EHR, and delivery through the outbox
(docs/architecture.md)."""
