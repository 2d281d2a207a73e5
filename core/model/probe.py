"""Linear probe: calibrated logistic regression on frozen embeddings.

Why our own L-BFGS fit rather than sklearn's LogisticRegression: the probe is refit
after every few labels while classes appear, so it must warm-start from the previous
version with a *different* class set, and the out-of-fold fits must warm-start from the
full fit to stay inside the time budget. Both need control over the initial parameters
that sklearn's estimator does not expose.

Why temperature scaling on out-of-fold logits rather than CalibratedClassifierCV: one
scalar can be fit from the few dozen labels of an early session without overfitting,
it keeps each item's class ranking, and it reuses the out-of-fold fits that
label-error detection needs anyway. CalibratedClassifierCV fits 2 parameters
(sigmoid) or a step function (isotonic) per class, refits the whole model per fold
on top, and renormalises one-vs-rest scores, which distorts multiclass probabilities.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_expit, log_softmax, softmax
from threadpoolctl import threadpool_limits


class LinearProbe:
    """Multinomial (or one-vs-rest multi-label) logistic regression on embeddings.

    Objective: ``sum_i w_i * loss_i + ||coef||^2 / (2 C)``, the intercept unpenalised,
    where ``w_i`` are balanced class weights (each class with labels carries the same
    total weight). A class that is known but has no labels gets an intercept of
    ``-inf``: probability 0 until its first label.

    Parameters
    ----------
    C : float
        Inverse L2 strength (on standardised inputs), as in scikit-learn. 0.01 beat
        0.1 and 1 at every budget from 20 to 300 labels, for random and for margin
        sampling, on bundled-backbone CIFAR-10 features (6k pool, 2 seeds).
    class_weight : {"balanced", None}
    multi_label : bool
        One-vs-rest sigmoids; ``y`` is then an indicator matrix.
    warm_start : bool
        Start from the previous fit's parameters, matched by class value; classes
        that are new start at zero.
    calibrate : bool
        Fit a temperature on out-of-fold logits; ``temperature_`` is 1 otherwise.
    n_folds : int
        Folds for ``oof_proba_`` (fewer when there are fewer labels); 0 skips the
        out-of-fold fits, and with them calibration, for callers that need neither.
    max_iter, tol : int, float
        L-BFGS iterations; ``tol`` bounds the largest gradient entry of the per-label
        objective (on standardised inputs), ``tol / 100`` its relative decrease. The
        out-of-fold fits start from the full fit, so a loose ``tol`` leaks the held-out
        labels into ``oof_proba_``; 1e-5 keeps that under ~0.01 in probability.
    random_state : int
        Fold assignment seed.
    blas_threads : int or None
        BLAS threads while fitting (process-wide for the duration of the fit);
        None leaves the setting alone. The products here are small (K x D by D x n),
        so threads gain little, and on a busy 2-core machine a second BLAS thread
        made a 10k-label fit 10x *slower* (47 s against 3 s).

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        Sorted union of the classes seen in earlier fits (warm start), of ``classes``
        and of ``y``. ``predict_proba`` columns follow it.
    coef_ : ndarray of shape (D, K), float32
    intercept_ : ndarray of shape (K,), float32
    temperature_ : float
        From the latest out-of-fold fits (1 without calibration); a fit with
        ``out_of_fold=False`` keeps the warm start's.
    oof_proba_ : ndarray of shape (n_labels, K), or None without out-of-fold fits
        Calibrated probabilities of each labeled item from a model fit without it.
        Rows of items whose class had no other label in the training folds give
        that class probability 0.
    n_iter_ : int
        L-BFGS iterations of the full fit.
    """

    def __init__(
        self,
        *,
        C=0.01,
        class_weight="balanced",
        multi_label=False,
        warm_start=True,
        calibrate=True,
        n_folds=5,
        max_iter=500,
        tol=1e-5,
        random_state=0,
        blas_threads=1,
    ):
        self.C = C
        self.class_weight = class_weight
        self.multi_label = multi_label
        self.warm_start = warm_start
        self.calibrate = calibrate
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.blas_threads = blas_threads

    # ----- fitting -------------------------------------------------------------------

    def fit(self, X, y, *, classes=None, out_of_fold=True, sample_weight=None):
        """Fit on labeled embeddings.

        Parameters
        ----------
        X : ndarray of shape (n, D)
        y : ndarray of shape (n,), or (n, K) 0/1 indicator when ``multi_label``
            (columns follow ``classes``, default ``arange(K)``).
        classes : array-like or None
            Classes known to exist even without labels yet (single-label), or the
            column labels of ``y`` (multi-label).
        out_of_fold : bool
            False skips the out-of-fold fits (``oof_proba_`` is None) whatever
            ``n_folds``, and keeps a warm start's ``temperature_``, so that the model can
            be served before :meth:`fit_out_of_fold` calibrates it.
        sample_weight : ndarray of shape (n,) or None
            Non-negative weight per row, multiplying the class weights (for instance
            pseudo-labels that count less than labels; see
            :class:`core.model.propagation.SemiSupervisedProbe`).

        Returns
        -------
        self
        """
        X = self._check_X(X)
        sample_weight = self._check_sample_weight(sample_weight, len(X))
        with self._blas_limit():
            previous = self._previous_fit(X.shape[1])
            temperature = getattr(self, "temperature_", 1.0) if previous is not None else 1.0
            targets = self._targets(X, y, classes, previous)
            init = self._initial_params(X.shape[1], previous)
            weights = self._weighted(self._sample_weights(targets), sample_weight)
            self.coef_, self.intercept_, self.n_iter_ = self._fit_params(X, targets, weights, init)
            self.temperature_ = temperature if not out_of_fold else 1.0
            self.oof_proba_ = None
            if out_of_fold and self.n_folds:
                self.oof_proba_ = self._out_of_fold(X, targets, sample_weight)
        return self

    def fit_out_of_fold(self, X, y, *, classes=None):
        """The out-of-fold fits of the labels the probe was just fit on: sets ``oof_proba_``
        and (with ``calibrate``) ``temperature_``; ``coef_`` and ``intercept_`` stay.

        Same ``X``, ``y`` and ``classes`` as the :meth:`fit` call before; returns self.
        """
        X = self._check_X(X)
        with self._blas_limit():
            targets = self._targets(X, y, classes, (self.classes_, self.coef_, self.intercept_))
            self.oof_proba_ = self._out_of_fold(X, targets) if self.n_folds else None
        return self

    @staticmethod
    def _check_sample_weight(sample_weight, n):
        if sample_weight is None:
            return None
        sample_weight = np.asarray(sample_weight, dtype=np.float32)
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},); got {sample_weight.shape}.")
        if not (np.isfinite(sample_weight).all() and (sample_weight >= 0).all()):
            raise ValueError("sample_weight must be finite and non-negative.")
        return sample_weight

    @staticmethod
    def _weighted(weights, sample_weight):
        if sample_weight is None:
            return weights
        return weights * (sample_weight[:, None] if weights.ndim == 2 else sample_weight)

    @staticmethod
    def _check_X(X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n, D); got shape {X.shape}.")
        return X

    def _blas_limit(self):
        return threadpool_limits(self.blas_threads, user_api="blas") if self.blas_threads is not None else nullcontext()

    def _previous_fit(self, dim):
        """(classes, coef, intercept) to warm-start from, or None."""
        if self.warm_start and hasattr(self, "coef_") and self.coef_.shape[0] == dim:
            return self.classes_, self.coef_, self.intercept_
        return None

    def _targets(self, X, y, classes, previous):
        """One-hot (or indicator) targets over the new ``classes_``, which it sets."""
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}.")
        previous = previous[0] if previous is not None else None
        if self.multi_label:
            y = y.reshape(len(X), -1)
            columns = np.arange(y.shape[1]) if classes is None else np.asarray(classes)
            if len(columns) != y.shape[1]:
                raise ValueError(f"multi-label y has {y.shape[1]} columns but {len(columns)} classes were given.")
            if previous is not None and not np.isin(previous, columns).all():
                raise ValueError("multi-label classes may grow between fits but not lose columns.")
            self.classes_ = columns
            return y.astype(np.float32)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D for a single-label probe; got shape {y.shape}.")
        known = [a for a in (y, np.asarray([] if classes is None else classes), previous) if a is not None and len(a)]
        self.classes_ = np.unique(np.concatenate(known)) if known else np.zeros(0, dtype=y.dtype)
        onehot = np.zeros((len(y), len(self.classes_)), np.float32)
        onehot[np.arange(len(y)), np.searchsorted(self.classes_, y)] = 1
        return onehot

    def _initial_params(self, dim, previous):
        """Previous parameters mapped onto the new classes; zeros for new classes."""
        coef = np.zeros((dim, len(self.classes_)), np.float64)
        intercept = np.zeros(len(self.classes_), np.float64)
        if previous is not None:
            old_classes, old_coef, old_intercept = previous
            position = {c: i for i, c in enumerate(old_classes.tolist())}
            for j, c in enumerate(self.classes_.tolist()):
                if c in position:
                    coef[:, j] = old_coef[:, position[c]]
                    intercept[j] = np.nan_to_num(old_intercept[position[c]], neginf=0.0, posinf=0.0)
        return coef, intercept

    def _sample_weights(self, targets):
        n = len(targets)
        if self.class_weight is None or n == 0:
            return np.ones_like(targets) if self.multi_label else np.ones(n, np.float32)
        if self.class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced' or None; got {self.class_weight!r}.")
        if self.multi_label:
            positives = targets.sum(axis=0).clip(1)
            negatives = (n - targets.sum(axis=0)).clip(1)
            return np.where(targets > 0, n / (2 * positives), n / (2 * negatives)).astype(np.float32)
        counts = targets.sum(axis=0)
        per_class = np.where(counts > 0, n / (np.count_nonzero(counts) * counts.clip(1)), 0)
        return (targets @ per_class).astype(np.float32)

    def _fit_params(self, X, targets, weights, init):
        """Minimise the objective over the classes that can be learned from ``targets``.

        Returns coef (D, K) float32, intercept (K,) float32 and the iteration count.
        """
        coef0, intercept0 = init
        dim, n_classes = coef0.shape
        counts = targets.sum(axis=0)
        if self.multi_label:
            active = (counts > 0) & (counts < len(targets))
        else:
            active = counts > 0
            if active.sum() < 2:  # nothing to separate: constant prediction
                active[:] = False
        coef = np.zeros((dim, n_classes), np.float32)
        # A class without labels (or, multi-label, a column that is constant) is certain.
        intercept = np.where(counts > 0, 0.0, -np.inf).astype(np.float32)
        if self.multi_label:
            intercept[counts == len(targets)] = np.inf
        if len(targets) == 0:
            intercept[:] = 0.0  # no labels at all: uniform over the known classes
        if not active.any():
            return coef, intercept, 0
        # Class-major layout (K, n): BLAS runs these products as wide GEMMs, several times
        # faster than the tall-skinny (n, D) @ (D, K) shapes on this kind of CPU.
        YT = np.ascontiguousarray(targets[:, active].T)
        WT = np.ascontiguousarray(weights[:, active].T) if self.multi_label else weights[None, :]
        # Standardising the inputs (centre, unit variance per dimension) conditions the
        # problem: L2-normalised embeddings have tiny per-dimension scales and a large
        # common component that is nearly collinear with the intercept. The penalty then
        # acts on the standardised weights, as with a StandardScaler in front.
        mean, std = X.mean(axis=0), X.std(axis=0) + 1e-6
        Xs = (X - mean) / std
        XsT = np.ascontiguousarray(Xs.T)
        k = int(active.sum())
        loss_grad = _binary_loss_grad if self.multi_label else _softmax_loss_grad
        scale = 1.0 / len(YT[0])  # the objective is divided by n so ``tol`` means the same at any n

        def objective(theta):
            w = theta[: k * dim].reshape(k, dim)
            b = theta[k * dim :]
            logits = w.astype(np.float32) @ XsT + b.astype(np.float32)[:, None]
            loss, dlogits = loss_grad(logits, YT, WT)
            grad_w = (dlogits @ Xs).astype(np.float64) + w / self.C
            loss += float((w * w).sum()) / (2 * self.C)
            grad = np.concatenate([grad_w.ravel(), dlogits.sum(axis=1, dtype=np.float64)])
            return loss * scale, grad * scale

        w0 = coef0[:, active].T
        theta0 = np.concatenate([(w0 * std).ravel(), intercept0[active] + w0 @ mean])
        result = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options=dict(maxiter=self.max_iter, gtol=self.tol, ftol=self.tol / 100),
        )
        w = result.x[: k * dim].reshape(k, dim) / std
        coef[:, active] = w.T
        intercept[active] = result.x[k * dim :] - w @ mean
        return coef, intercept, int(result.nit)

    def _folds(self, targets):
        """Fold id per labeled item, stratified by class (round-robin within each class)."""
        n = len(targets)
        n_folds = min(self.n_folds, n)
        rng = np.random.default_rng(self.random_state)
        folds = np.empty(n, dtype=np.int64)
        groups = [np.arange(n)] if self.multi_label else [np.flatnonzero(col) for col in targets.T]
        offset = 0
        for members in groups:
            folds[rng.permutation(members)] = (offset + np.arange(len(members))) % n_folds
            offset += len(members)
        return folds, n_folds

    def _out_of_fold(self, X, targets, sample_weight=None):
        """Out-of-fold logits -> temperature -> calibrated ``oof_proba_``."""
        n = len(targets)
        # With a single label, "a model fit without it" has no labels: logits 0 (uniform, or 0.5 each).
        logits = np.zeros((n, len(self.classes_)), np.float32)
        if n >= 2:
            folds, n_folds = self._folds(targets)
            full = (self.coef_.astype(np.float64), np.nan_to_num(self.intercept_, neginf=0.0, posinf=0.0))
            for fold in range(n_folds):
                train, held = folds != fold, folds == fold
                # Warm start from the full fit: the objective is convex and its optimal
                # predictions are unique, so the start changes the speed, not the answer.
                weights = self._sample_weights(targets[train])
                if sample_weight is not None:
                    weights = self._weighted(weights, sample_weight[train])
                coef, intercept, _ = self._fit_params(X[train], targets[train], weights, full)
                logits[held] = X[held] @ coef + intercept
        if self.calibrate and n >= 2:
            self.temperature_ = _fit_temperature(logits, targets, multi_label=self.multi_label)
        return self._proba_from_logits(logits)

    # ----- prediction ----------------------------------------------------------------

    def decision_function(self, X):
        """Uncalibrated logits, ndarray of shape (M, K)."""
        X = np.asarray(X, dtype=np.float32)
        return X @ self.coef_ + self.intercept_

    def _proba_from_logits(self, logits):
        if logits.shape[1] == 0:
            return logits
        # float64 so that the margins of confident items do not round to exactly 0.
        scaled = logits.astype(np.float64) / self.temperature_
        return expit(scaled) if self.multi_label else softmax(scaled, axis=1)

    def predict_proba(self, X):
        """Calibrated probabilities, ndarray of shape (M, K), columns following ``classes_``.

        Single-label rows sum to 1 (uniform when the probe has no labels);
        multi-label entries are independent per class.
        """
        return self._proba_from_logits(self.decision_function(X))

    def predict(self, X):
        """Most probable class per row (M,), or a 0/1 indicator (M, K) when multi-label."""
        proba = self.predict_proba(X)
        if self.multi_label:
            return (proba >= 0.5).astype(np.int8)
        return self.classes_[proba.argmax(axis=1)]

    # ----- storage -------------------------------------------------------------------

    def to_arrays(self):
        """The fitted model as plain arrays (nothing pickled): coef, intercept, classes,
        temperature and multi_label. ``oof_proba_`` is a fit diagnostic and not included."""
        return dict(
            coef=self.coef_,
            intercept=self.intercept_,
            classes=self.classes_,
            temperature=np.asarray(self.temperature_, np.float64),
            multi_label=np.asarray(self.multi_label),
        )

    @classmethod
    def from_arrays(cls, arrays, **params):
        """Rebuild a fitted probe from :meth:`to_arrays` output; ``params`` go to ``__init__``."""
        probe = cls(**{**params, "multi_label": bool(arrays["multi_label"])})
        probe.coef_ = np.asarray(arrays["coef"], np.float32)
        probe.intercept_ = np.asarray(arrays["intercept"], np.float32)
        probe.classes_ = np.asarray(arrays["classes"])
        probe.temperature_ = float(arrays["temperature"])
        return probe


def _softmax_loss_grad(logits, Y, weights):
    """Weighted cross-entropy and its gradient w.r.t. logits of shape (K, n)."""
    log_p = log_softmax(logits, axis=0)
    loss = -float((weights * Y * log_p).sum(dtype=np.float64))
    return loss, weights * (np.exp(log_p) - Y)


def _binary_loss_grad(logits, Y, weights):
    """Weighted binary cross-entropy per entry and its gradient w.r.t. logits of shape (K, n)."""
    loss = -float((weights * (Y * log_expit(logits) + (1 - Y) * log_expit(-logits))).sum(dtype=np.float64))
    return loss, weights * (expit(logits) - Y)


def _fit_temperature(logits, targets, *, multi_label):
    """Temperature minimising the NLL of out-of-fold logits.

    Items whose true class was unseen in their training folds (logit ``-inf``) carry
    no information about the scale and are left out.
    """
    if multi_label:
        finite = np.isfinite(logits)
        z, t = logits[finite].astype(np.float64), targets[finite]
        if len(z) == 0:
            return 1.0

        def nll(log_t):
            s = z / np.exp(log_t)
            return -float((t * log_expit(s) + (1 - t) * log_expit(-s)).sum())
    else:
        true_logit = np.where(targets > 0, logits, 0.0).sum(axis=1)
        usable = np.isfinite(true_logit) & (np.isfinite(logits).sum(axis=1) >= 2)
        if not usable.any():
            return 1.0
        z, t = logits[usable].astype(np.float64), targets[usable]

        def nll(log_t):
            return -float((t * np.nan_to_num(log_softmax(z / np.exp(log_t), axis=1), neginf=0.0)).sum())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))
