"""The HTTP and WebSocket API under ``/api``: parse, call one domain function, serialise."""
