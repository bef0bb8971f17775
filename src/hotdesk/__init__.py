"""hotdesk: a broker for dynamic (floating, non-persistent) desktop pools."""

__version__ = "0.1.0"
