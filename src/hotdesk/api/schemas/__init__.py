"""Request and response bodies: ``*Create`` / ``*Update`` in, ``*Read`` out, split by area."""
