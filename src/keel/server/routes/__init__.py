"""The session API's routes, one module per resource."""
