"""Use cases shared by the API, the CLI and the reconciler. They own the transactions."""
