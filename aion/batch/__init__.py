"""Batch operations (StartBatchOperation and friends): a durable job per request that applies
one operation (terminate, cancel, signal, delete, reset, update-options, unpause-activities) to
each workflow a query or a list names, at a bounded rate, on the process owning the job's shard.
"""
