"""Export an output in a training layout: `export_birdclef("out/", "synthetic/")` or `birdgen-ray export`."""

from birdgen_ray.export.birdclef import ExportConfig, ExportError, export_birdclef

__all__ = ["ExportConfig", "ExportError", "export_birdclef"]
