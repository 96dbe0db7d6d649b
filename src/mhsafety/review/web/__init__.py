"""The clinician review web app (FastAPI + Jinja2 + vendored htmx)."""

HTMX_VERSION = "2.0.11"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
"""Pin of the vendored ``static/htmx.min.js`` (see ``VENDORED.md``)."""
