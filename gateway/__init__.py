"""The Flask REST gateway: turns HTTP calls into nameko RPC and owns HTTP concerns."""
