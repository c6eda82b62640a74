"""Workloads, the seed-compatible node API, the virtual-time runner, the bench and the oracle."""
