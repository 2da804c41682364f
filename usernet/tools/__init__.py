"""Packet tools on top of the stack: replay a capture through it, answer packets by rule.

They sit with the CLI at the top of the layering: they join captures (usernet.link),
the engine (usernet.stack) and the drivers, and nothing below imports them.
"""
