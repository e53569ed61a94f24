"""Between clusters: Aion's own protocol (not Temporal's internal AdminService) over each
cluster's gRPC port. `remote.py` reaches another cluster (its identity, its namespaces, a
forwarded client call); `service.py` answers the other clusters; `namespaces.py` keeps this
cluster's copies of the global namespaces in step with the other clusters'. See
docs/global-namespaces.md."""
