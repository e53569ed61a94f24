"""History operations: one module per API operation, each a function over `MutableState`."""
