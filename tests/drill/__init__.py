"""Tests of the packetdrill script parser (usernet.testing.drill)."""
