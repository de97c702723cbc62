"""Request and response shapes of the HTTP API, one module per room its routes serve."""
