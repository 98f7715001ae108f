"""Aegis for coding agents: Claude Code, Codex and Cursor hooks (``aegis hook ...``).

Nothing is imported here: the hook path must stay light. ``mapping`` turns payloads into
actions, ``run`` decides and audits, ``handle`` answers one call, ``daemon`` keeps them open
between calls, and the top-level ``aegis_hook`` module is the stdlib-only hook command.
"""
