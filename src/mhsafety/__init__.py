"""mhsafety: safety assurance for mental-health AI (bench, audit, guard)."""

__version__ = "0.1.0"
