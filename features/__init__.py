"""Event schema, the Redis event log, per-user features and labels. Imports nothing of ours."""
