"""gRPC front door: request validation, namespace resolution, error mapping."""
