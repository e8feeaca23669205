"""Local stand-ins for the upstreams, for development and tests."""
