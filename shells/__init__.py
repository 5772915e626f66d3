"""The launch scripts' Python helpers (run from the repository root: python -m shells.NAME)."""
