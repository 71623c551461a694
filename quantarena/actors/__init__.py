"""quantarena.actors."""
