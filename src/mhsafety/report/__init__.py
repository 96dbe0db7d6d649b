"""Self-contained HTML reports (figures embedded)."""
