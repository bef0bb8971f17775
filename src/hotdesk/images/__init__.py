"""Guest images hotdesk can build itself (the demo desktop used by tests and benchmarks)."""

from hotdesk.images.demo import DemoImage, build_demo_image

__all__ = ["DemoImage", "build_demo_image"]
