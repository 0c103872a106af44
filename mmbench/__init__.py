"""mmbench: measure how the mixing knobs of multimodal preference alignment move eight benchmarks."""

__version__ = "0.1.0"
