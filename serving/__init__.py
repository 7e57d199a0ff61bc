"""lapse."""
