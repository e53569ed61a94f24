"""Worker Versioning: worker deployments, their versions, and the routing of tasks to them."""
