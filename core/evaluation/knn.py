"""k-nearest-neighbour classification accuracy on embeddings, for evaluating features."""

from __future__ import annotations

import numpy as np


def knn_predict(bank, bank_labels, queries, *, k=20, temperature=0.07, chunk=2048):
    """Predict labels by a similarity-weighted vote of the ``k`` most cosine-similar bank items.

    Votes are weighted by ``exp(similarity / temperature)``, as DINO's kNN evaluation does.

    Parameters
    ----------
    bank : ndarray of shape (N, D)
    bank_labels : ndarray of shape (N,), int
    queries : ndarray of shape (M, D)

    Returns
    -------
    ndarray of shape (M,), int
    """
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True).clip(1e-12)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    n_classes = int(bank_labels.max()) + 1
    k = min(k, len(bank))
    predictions = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ bank.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, top, axis=1) / temperature)
        votes = np.zeros((len(top), n_classes))
        np.add.at(votes, (np.arange(len(top))[:, None], bank_labels[top]), weights)
        predictions[start : start + chunk] = votes.argmax(axis=1)
    return predictions


def knn_accuracy(bank, bank_labels, queries, query_labels, **kwargs):
    """Share of queries whose kNN prediction equals their label."""
    return float(np.mean(knn_predict(bank, bank_labels, queries, **kwargs) == query_labels))


class KNNMonitor:
    """Trainer callback: kNN accuracy of the current backbone on a labeled set.

    The labels are read for evaluation only; they never reach the training loss.

    Parameters
    ----------
    bank_images, query_images : ndarray of shape (N, S, S, 3), uint8
    bank_labels, query_labels : ndarray of shape (N,), int
    every : int
        Evaluate after every ``every`` epochs.
    log : callable
        Receives one line of text per evaluation.
    """

    def __init__(self, *, bank_images, bank_labels, query_images, query_labels, every=10, k=20, log=print):
        self.bank_images, self.bank_labels = bank_images, bank_labels
        self.query_images, self.query_labels = query_images, query_labels
        self.every, self.k, self.log = every, k, log
        self.results_ = []

    def evaluate(self, trainer):
        from core.features.encode import encode_uint8

        def encode(images):
            return encode_uint8(trainer.backbone_, images, mean=trainer.mean_, std=trainer.std_, device=trainer.device)

        accuracy = knn_accuracy(
            encode(self.bank_images), self.bank_labels, encode(self.query_images), self.query_labels, k=self.k
        )
        self.results_.append(dict(step=trainer.step_, knn_accuracy=accuracy))
        self.log(f"step {trainer.step_}: kNN@{self.k} accuracy {accuracy:.4f}")
        return accuracy

    def on_epoch_end(self, trainer, epoch):
        if (epoch + 1) % self.every == 0:
            self.evaluate(trainer)
