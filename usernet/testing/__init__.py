"""Tools for testing usernet without a network: script parsers and virtual-clock drivers."""
