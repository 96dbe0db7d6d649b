"""The clinician review app's data layer: accounts, the blinded queue, labels, audit trail.

Modules: :mod:`~mhsafety.review.db` (engines, sessions, migrations),
:mod:`~mhsafety.review.models` (schema), :mod:`~mhsafety.review.accounts`,
:mod:`~mhsafety.review.queue` (import, assignment, blinded reads),
:mod:`~mhsafety.review.labels` (labels, adjudication, agreement, export, ``LabelSet``) and
:mod:`~mhsafety.review.audit_trail`. Needs the ``review`` extra (SQLAlchemy, Alembic,
argon2-cffi; psycopg for PostgreSQL).
"""
