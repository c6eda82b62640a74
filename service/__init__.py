"""The decision core (pool, scaler, engine) and the live shell (consumer, providers, API)."""
