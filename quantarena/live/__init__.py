"""quantarena.live."""
