"""Durable task processing after commit: the timer queue."""
