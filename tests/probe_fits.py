"""A ``fit`` for :class:`core.model.loop.RetrainLoop` that trains a LinearProbe in a worker process on
rows of a fixed embedding matrix: what the engine does, without the engine."""

from __future__ import annotations

from core.model.retrain_worker import ProbeTrainer, train_probe


class ProbeFit:
    def __init__(self, embeddings, *, train=train_probe):
        self.embeddings, self.trainer = embeddings, ProbeTrainer(train=train)

    def __call__(self, indices, labels, previous):
        return self.trainer.fit(self.embeddings[indices], labels, previous)

    def close(self):
        self.trainer.close()
