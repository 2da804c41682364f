"""Drivers: what moves frames between a link and the sans-IO stack and keeps its time.

`Host` pairs one link with one interface; `selectloop` runs hosts on real time with
`select`; `virtual` runs them on a virtual clock; `config` is the composition root that
turns options (flags, USERNET_* variables, keyword arguments) into an open Host.
"""
