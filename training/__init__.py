"""Datasets from the event log; training, evaluation, registration, promotion, retraining."""
