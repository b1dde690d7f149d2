"""Background services under one supervisor."""
