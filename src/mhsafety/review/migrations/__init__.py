"""Alembic migrations of the review database (run by :func:`mhsafety.review.db.upgrade`)."""
