"""Approval requests: the handler contract, the durable request book, and the flow between them.

Where to start: ``handlers`` is the small contract a handler implements and ``decide()``;
``flow`` is what the engine calls for an ``approve`` decision; ``store`` is the book of
requests in the audit database (its rows, tokens, links, waits and reaping live in the
modules named after them); ``channels`` loads the channel plugins by name.
"""
