"""Layered safeguards around any chat model: layers, policy, actions, the guard server.

The pure core is :func:`mhsafety.safeguards.guard.decide` and the message composition;
:class:`~mhsafety.safeguards.guard.Guard` adds the upstream call,
:class:`~mhsafety.safeguards.service.GuardedModel` the conversation state and log, and
:mod:`mhsafety.safeguards.server` the OpenAI-compatible HTTP front.
"""
