"""The REST API: FastAPI app factory, thin routers and *Create/*Update/*Read schemas."""
