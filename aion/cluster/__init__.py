"""Several server processes on one database: membership, shard leases, calls between peers.

A process joins by heartbeating a row in the hosts table. Every process computes the same owner
for each history shard from the live hosts (rendezvous hashing) and takes the leases of its own
shards; the lease's range id fences a previous owner out of the shard. A call for an execution
whose shard lives elsewhere is forwarded to the owner; tasks that no local poller takes are shared
with the other processes through the database's notifications.
"""

from aion.cluster.cluster import Cluster

__all__ = ["Cluster"]
