"""`birdgen-ray evaluate`: does a synthetic set help? A real-only linear probe on BirdNET embeddings
against real + synthetic, cross-validated on held-out real recordings (protocol: docs/evaluation.md)."""

from birdgen_ray.evaluate.config import EvaluateConfig

__all__ = ["EvaluateConfig"]
