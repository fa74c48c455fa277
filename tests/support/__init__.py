"""Test helpers: real servers that tests drive over loopback."""
