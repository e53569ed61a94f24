"""Task queues: long polls, sync match to waiting pollers, backlog, sticky queues, queries."""

from aion.matching.engine import MatchingEngine, QueryTask

__all__ = ["MatchingEngine", "QueryTask"]
