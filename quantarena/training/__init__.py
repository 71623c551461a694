"""quantarena.training: Optuna tuning of agents by batches (samplers, storages, the tuning
loop). The ``ml`` agent's features, torch models and rolling refits live with the agent in
:mod:`quantarena.strategies.ml`, below this package."""
