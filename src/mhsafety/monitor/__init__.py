"""Continuous assurance: the ecological audit over time windows and system versions.

Stages: :mod:`.windows` (pure: which window a conversation is in), :mod:`.split` (the log cut
into window logs, every record placed or reported), :mod:`.run` (one audit workspace per
window, per-version pooling, the trend), :mod:`.alerts` (rules as data), :mod:`.misses`
(confirmed misses as a bench bundle), :mod:`.compare` (bench beside real world) and
:mod:`.coverage` (real disclosure styles no test item resembles).
"""
