"""Offline stand-ins users and tests share: a loopback OpenAI-compatible endpoint."""
