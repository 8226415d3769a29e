"""Tipwise: a self-hosted personal tips engine that learns from how people react."""

__version__ = "0.1.0"
