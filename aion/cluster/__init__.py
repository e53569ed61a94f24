"""Several server processes on one database: membership, shard leases, calls between peers.

A process joins by heartbeating a row in the hosts table. Every process computes the same owner
for each history shard from the live hosts (rendezvous hashing) and takes the leases of its own
shards; the lease's range id fences a previous owner out of the shard. A call for an execution
whose shard lives elsewhere is forwarded to the owner. A task stays with its shard's owner: a
poller that has waited a moment on one process with nothing to take also polls another process
for it (`poll_for_peer`), and takes what comes first.
"""

from aion.cluster.cluster import Cluster

__all__ = ["Cluster"]
