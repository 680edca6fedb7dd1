"""The records the line and the console keep: people, identity checks, choices, follow-ups, the audit,
the outbox and staff accounts. Each owns its tables and transactions; none imports the line or the console."""
