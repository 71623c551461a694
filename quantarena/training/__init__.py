"""quantarena.training."""
