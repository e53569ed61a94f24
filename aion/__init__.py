"""Aion: a durable execution server that speaks Temporal's public API."""

__version__ = "0.1.0"
