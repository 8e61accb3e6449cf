"""The HTML QA report of an output: `build_report("out/")` or `birdgen-ray report out/`."""

from birdgen_ray.report.build import ReportConfig, build_report

__all__ = ["ReportConfig", "build_report"]
