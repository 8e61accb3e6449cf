"""birdgen-ray: synthetic bird and wildlife calls with AudioLDM2 on Ray."""

__version__ = "0.1.0"
