"""The ``sim`` driver: an in-memory SIMULATED platform for tests, demos and benchmarks."""

from hotdesk.providers.sim.driver import SimConfig, SimProvider
from hotdesk.providers.sim.platform import SimPlatform, SimVm

__all__ = ["SimConfig", "SimPlatform", "SimProvider", "SimVm"]
