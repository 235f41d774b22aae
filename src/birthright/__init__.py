"""birthright: a cryptographic identity for every device, minted at the factory."""

__version__ = "0.1.0"
