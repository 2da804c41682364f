"""Tools for testing usernet: the packetdrill script runner."""
