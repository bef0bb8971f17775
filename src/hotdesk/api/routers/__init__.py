"""Thin routers by area: parse with a schema, call a use case, answer with a ``*Read``."""
