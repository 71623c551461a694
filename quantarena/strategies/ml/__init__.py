"""The ``ml`` agent and what it is made of: features, torch models, rolling refits.

* :mod:`.agent` — :class:`MLAgent`, a torch MLP/GRU retrained on rolling windows;
* :mod:`.features` — the feature matrix and the next-bar labels;
* :mod:`.models` — the torch models, one fit with early stopping, batch prediction;
* :mod:`.rolling` — the walk-forward refit schedule and its look-ahead rules.

These live with the agent (not in :mod:`quantarena.training`, which tunes agents) so that
``strategies`` never imports a package above it. torch is imported only when a model is
built or trained.
"""

from __future__ import annotations

from quantarena.strategies.ml.agent import Duration, MLAgent, to_bars

__all__ = ["Duration", "MLAgent", "to_bars"]
