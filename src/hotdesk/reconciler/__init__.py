"""Level-triggered loops: pools, desktops, leak sweeper, provider health."""
