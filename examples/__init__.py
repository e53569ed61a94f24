"""Runnable examples of Temporal programs served by Aion."""
