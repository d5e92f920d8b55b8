"""vizoflow: retail CCTV analytics as a Hydra-declared graph of small nodes."""

__version__ = "0.1.0"
