"""dse: design-space exploration for training Capsule Networks fast."""

__version__ = "0.1.0"
