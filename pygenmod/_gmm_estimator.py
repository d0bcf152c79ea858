"""scikit-learn compatible estimators around :mod:`pygenmod.gmm`.

scikit-learn is not imported here: the estimator protocol (get_params / set_params /
__sklearn_tags__ / n_features_in_) is implemented directly, and sklearn's own classes
(Tags, ConvergenceWarning) are imported only inside methods that sklearn itself calls, or when
it is installed.
"""

from __future__ import annotations

import inspect
import numbers
import time
import warnings
from typing import Any

import numpy as np

from . import _validate as val
from . import gmm as _g
from ._seed import resolve_seed
from ._typing import Array, ArrayLike, CovarianceType, GMMInit, OnDegenerate, SeedLike


def _convergence_warning():
    try:
        from sklearn.exceptions import ConvergenceWarning

        return ConvergenceWarning
    except ImportError:  # pragma: no cover - sklearn is a test dependency only
        return _g.GMMWarning


def _seed(random_state) -> int:
    """scikit-learn's random_state (None, int, RandomState, Generator) as a Philox key: None
    draws from the package generator (:mod:`pygenmod.random`), so it follows manual_seed."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) and random_state < 0:
        raise ValueError(f"random_state: must be >= 0, got {random_state}")
    try:
        return resolve_seed(random_state, "random_state")
    except TypeError:
        raise ValueError(
            f"random_state: expected None, an int, a RandomState or a Generator, got {type(random_state).__name__}"
        ) from None


def _check_sample_weight(sample_weight, n, dtype):
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.ndim == 0:
        sw = np.full(n, float(sw))
    if sw.dtype.kind not in "fiub":
        raise TypeError(f"sample_weight: expected numbers, got dtype {sw.dtype}")
    sw = sw.astype(dtype)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)!")
    if not np.isfinite(sw).all() or (sw < 0).any():
        raise ValueError("sample_weight: must be finite and non-negative")
    if not sw.sum() > 0:
        raise ValueError("sample_weight: all weights are zero (at least one must be positive)")
    return sw


# scikit-learn's own wording (sklearn/mixture/_gaussian_mixture.py), so the drop-in raises what
# code written against sklearn.mixture.GaussianMixture expects.
_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)
_ILL_DEFINED_F32 = " The numerical accuracy can also be improved by passing float64 data instead of float32."
ON_DEGENERATE = ("regularise", "raise")


def _sk_shape(a, shape, name):
    if a.shape != shape:
        raise ValueError("The parameter '%s' should have the shape of %s, but got %s" % (name, shape, a.shape))


def _sk_float(a):
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _sk_check_weights(w, K):
    w = _sk_float(w)
    _sk_shape(w, (K,), "weights")
    if (w < 0).any() or (w > 1).any():
        # sklearn prints min under "max value" and max under "min value"; kept verbatim
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value %.5f, "
            "min value %.5f" % (np.min(w), np.max(w))
        )
    atol = 1e-6 if w.dtype == np.float32 else 1e-8
    if not np.allclose(float(np.abs(1.0 - np.sum(w))), 0.0, atol=atol):
        raise ValueError("The parameter 'weights' should be normalized, but got sum(weights) = %.5f" % np.sum(w))


def _sk_check_precisions(p, ct, K, D):
    p = _sk_float(p)
    shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ct]
    _sk_shape(p, shape, "%s precision" % ct)
    if ct in ("diag", "spherical"):
        if (p <= 0).any():
            raise ValueError("'%s precision' should be positive" % ct)
        return
    for m in p if ct == "full" else p[None]:
        if not (np.isclose(m, m.T).all() and (np.linalg.eigvalsh(m) > 0).all()):
            raise ValueError("'%s precision' should be symmetric, positive-definite" % ct)


def _sklearn_constraints(est, skip=("random_state",)):
    """scikit-learn's own parameter validation (its exact messages) when it is installed; the
    package's checks run after it either way. random_state is checked by _seed (which also
    takes a numpy Generator, which sklearn's constraint does not)."""
    try:
        from sklearn.mixture import GaussianMixture as _Sk
        from sklearn.utils._param_validation import validate_parameter_constraints
    except ImportError:  # pragma: no cover - sklearn is a test dependency only
        return
    cons = {k: v for k, v in _Sk._parameter_constraints.items() if k not in skip}
    params = {k: v for k, v in est.get_params().items() if k in cons}
    validate_parameter_constraints(cons, params, caller_name=type(est).__name__)


class _Base:
    """Minimal estimator protocol (what sklearn.base.BaseEstimator provides)."""

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> _Base:
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. Valid parameters are: {valid!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._get_param_names():
            default = sig.parameters[name].default
            value = getattr(self, name, None)
            same = value is default or (
                not isinstance(value, np.ndarray) and value == default if not isinstance(default, np.ndarray) else False
            )
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            regressor_tags=None,
            classifier_tags=None,
            input_tags=InputTags(allow_nan=False, sparse=False, two_d_array=True),
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "converged_")

    def _check_fitted(self):
        if not hasattr(self, "converged_"):
            try:
                from sklearn.exceptions import NotFittedError
            except ImportError:  # pragma: no cover
                NotFittedError = AttributeError  # noqa: N806
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator."
            )


class _MixtureParams:
    """Parameter validation shared by the single and batched estimators."""

    def _check_params(self):
        val.positive_int(self.n_components, "n_components")
        val.choice(self.covariance_type, "covariance_type", _g.COVARIANCE_TYPES)
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol: must be a number >= 0, got {self.tol!r}")
        if isinstance(self.reg_covar, numbers.Real) and not self.reg_covar >= 0:
            raise ValueError(f"reg_covar: must be >= 0, got {self.reg_covar!r}")
        val.positive_int(self.max_iter, "max_iter", minimum=0)
        val.positive_int(self.n_init, "n_init")
        val.choice(self.init_params, "init_params", _g.INITS)
        if not isinstance(self.verbose, (numbers.Integral, np.bool_)) or self.verbose < 0:
            raise ValueError(f"verbose: must be an int >= 0 or a bool, got {self.verbose!r}")
        val.positive_int(self.verbose_interval, "verbose_interval")

    def _params(self) -> _g.GMMParams:
        return _g.GMMParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_, self.covariance_type
        )

    def _set_fitted(self, res: _g.FitResult):
        p = res.params
        self.weights_, self.means_ = p.weights, p.means
        self.covariances_, self.precisions_cholesky_ = p.covariances, p.precisions_cholesky
        self.precisions_ = _g.precisions(p)
        self.converged_ = res.converged
        self.n_iter_ = res.n_iter
        self.lower_bound_ = res.lower_bound
        self.flags_ = res.flags
        self.lower_bounds_ = res.lower_bounds

    def _fit_result(self, X, sample_weight, record: bool):
        """Runs pygenmod.gmm.fit with the estimator's parameters (initial fit or warm start)."""
        kw = dict(
            covariance_type=self.covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            warn=getattr(self, "warn", False),
            lower_bounds=record,
            callback=self._progress_printer(X),
        )
        if self.warm_start and hasattr(self, "converged_"):
            return _g.fit(
                X, self.n_components, sample_weight, init=self._params(), lower_bound_init=self.lower_bound_, **kw
            )
        return _g.fit(
            X,
            self.n_components,
            sample_weight,
            n_init=self.n_init,
            init=self.init_params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
            seed=_seed(self.random_state),
            **kw,
        )

    def _progress_printer(self, X):
        """scikit-learn's verbose messages, from pygenmod.gmm.fit's per-iteration callback."""
        verbose, every = int(self.verbose), self.verbose_interval
        if verbose <= 0:
            return None
        batched = X.ndim == 3
        clock = {}

        def show(ev: _g.FitProgress):
            now = time.time()
            if ev.iteration == 0:
                print("Initialization %d" % ev.init)
                clock.update(init=now, iter=now, left=len(ev.sets), conv=0, final=np.full(len(ev.sets), np.nan))
                return
            clock["final"][ev.sets[ev.finished]] = ev.lower_bound[ev.finished]
            clock["left"] -= int(ev.finished.sum())
            clock["conv"] += int(ev.converged.sum())
            if ev.iteration % every == 0:
                if batched:
                    line = "  Iteration %d\t %d of %d sets running" % (ev.iteration, len(ev.sets), X.shape[0])
                    if verbose >= 2:
                        ch = np.abs(ev.change[np.isfinite(ev.change)])
                        line += "\t time lapse %.5fs\t max |ll change| %.5f" % (
                            now - clock["iter"],
                            ch.max() if ch.size else np.nan,
                        )
                    print(line)
                elif verbose == 1:
                    print("  Iteration %d" % ev.iteration)
                else:
                    print(
                        "  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                        % (ev.iteration, now - clock["iter"], ev.change[0])
                    )
                clock["iter"] = now
            if clock["left"] > 0:
                return
            if batched:
                msg = "Initialization done: %d of %d sets converged." % (clock["conv"], X.shape[0])
            else:
                msg = "Initialization %s." % ("converged" if ev.converged[0] else "did not converge")
            if verbose >= 2:
                fin = clock["final"][np.isfinite(clock["final"])]
                lb = ev.lower_bound[0] if not batched else (fin.mean() if fin.size else -np.inf)
                what = "lower bound" if not batched else "mean lower bound"
                msg = msg[:-1] + f". time lapse {now - clock['init']:.5f}s\t {what} {lb:.5f}."
            print(msg)

        return show


class GaussianMixture(_MixtureParams, _Base):
    """scikit-learn's GaussianMixture API on pygenmod's EM kernels.

    Same parameters, methods and fitted attributes as ``sklearn.mixture.GaussianMixture``
    (weights_, means_, covariances_, precisions_, precisions_cholesky_, converged_, n_iter_,
    lower_bound_, lower_bounds_, n_features_in_), plus ``flags_`` (per-component status, see
    :mod:`pygenmod.gmm`) and ``sample_weight`` in fit.

    ``lower_bounds_`` (scikit-learn >= 1.6): the lower bound of every iteration of the kept
    init, a list of n_iter_ floats. To see every iteration, fit drives the EM iterations from
    Python (one kernel call each, ``gmm.fit(..., lower_bounds=True)``); this costs ~10-20 us
    per iteration over the compiled loop. ``verbose`` / ``verbose_interval`` print
    scikit-learn's messages ("Initialization k", "  Iteration i" every verbose_interval
    iterations, "Initialization converged." / "did not converge."; verbose >= 2 adds the time
    lapse, the change of the bound and the final bound), from the real per-iteration bounds.
    Unlike scikit-learn, all inits are initialised before the first EM iteration, so the time
    lapse of an init does not include its initialisation (k-means).

    ``on_degenerate``: "regularise" (default, pygenmod's policy: a covariance that is not
    positive definite gets growing diagonal jitter, flagged in ``flags_``; see
    :mod:`pygenmod.gmm`) or "raise" (scikit-learn's behaviour: ValueError "Fitting the mixture
    model failed because some components have ill-defined empirical covariance ..." when the
    kept fit needed that jitter: a failed Cholesky factor (full / tied), or a variance below
    1e-10 x the data's mean variance (diag / spherical; scikit-learn only fails at <= 0, so
    "raise" is stricter there). Parameter errors use scikit-learn's wording (its own
    validator when scikit-learn is installed; "The parameter 'weights' should have the shape
    of (2,), but got (2, 1)", "Invalid value for 'n_samples'", ...).

    Differences: init_params
    'kmeans' uses pygenmod's own k-means (so the same random_state gives other initial
    means than sklearn); fewer samples than components is handled (duplicate components) rather
    than rejected; ``sample`` uses pygenmod's Philox generator.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: GMMInit = "kmeans",
        weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None,
        precisions_init: ArrayLike | None = None,
        random_state: SeedLike = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        on_degenerate: OnDegenerate = "regularise",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.on_degenerate = on_degenerate

    # -- input
    def _check_X(self, X, reset: bool):
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(
                f"{type(self).__name__} does not accept sparse data; convert it to a dense array (X.toarray())."
            )
        names = getattr(X, "columns", None)
        if names is not None:
            names = np.asarray(names, dtype=object)
            if not all(isinstance(n, str) for n in names):
                names = None
        if hasattr(X, "dtype") and getattr(X.dtype, "kind", "f") == "c":
            raise ValueError("Complex data not supported")
        arr = np.asarray(X) if not hasattr(X, "__dlpack__") and not hasattr(X, "dtype") else X
        if getattr(arr, "dtype", None) is not None and np.dtype(arr.dtype).kind == "c":
            raise ValueError("Complex data not supported")
        if getattr(arr, "dtype", None) is not None and np.dtype(arr.dtype).kind in "iub":
            arr = np.asarray(arr, dtype=np.float64)
        if getattr(arr, "dtype", None) is not None and np.dtype(arr.dtype).kind == "O":
            try:
                arr = np.asarray(arr, dtype=np.float64)
            except TypeError as exc:
                raise TypeError(f"X: could not convert to float: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"X: could not convert to float: {exc}") from None
        Xa = val.float_array(arr, "X")
        if Xa.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {Xa.ndim}D array instead: X with shape "
                f"{Xa.shape}. Reshape your data either using array.reshape(-1, 1) if "
                "your data has a single feature or array.reshape(1, -1) if it "
                "contains a single sample."
            )
        if Xa.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={Xa.shape}) while a minimum of 1 is required.")
        if Xa.shape[1] < 1:
            raise ValueError(f"Found array with 0 feature(s) (shape={Xa.shape}) while a minimum of 1 is required.")
        if reset:
            self.n_features_in_ = Xa.shape[1]
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and names is None:
                warnings.warn(
                    f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names",
                    UserWarning,
                    stacklevel=3,
                )
            elif fitted is None and names is not None:
                warnings.warn(
                    f"X has feature names, but {type(self).__name__} was fitted without feature names",
                    UserWarning,
                    stacklevel=3,
                )
            elif fitted is not None and (len(fitted) != len(names) or (fitted != names).any()):
                raise ValueError("The feature names should match those that were passed during fit.")
            if Xa.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {Xa.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
        return Xa

    # -- fitting
    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> GaussianMixture:
        """Fit with EM (n_init runs in one batched call, the best lower bound kept)."""
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Array:
        _sklearn_constraints(self)
        self._check_params()
        val.choice(self.on_degenerate, "on_degenerate", ON_DEGENERATE)
        X = self._check_X(X, reset=True)
        self._check_initial_parameters(X.shape[1])
        sample_weight = _check_sample_weight(sample_weight, X.shape[0], X.dtype)
        res = self._fit_result(X, sample_weight, record=True)
        if self.on_degenerate == "raise" and bool((np.asarray(res.flags) & _g.REGULARISED).any()):
            raise ValueError(_ILL_DEFINED + (_ILL_DEFINED_F32 if X.dtype == np.float32 else ""))
        self._set_fitted(res)
        self.lower_bounds_ = [float(v) for v in self.lower_bounds_]  # a list, as in sklearn
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                _convergence_warning(),
                stacklevel=2,
            )
        return self.predict(X)

    def _check_initial_parameters(self, D):
        """weights_init / means_init / precisions_init, with scikit-learn's messages."""
        K, ct = self.n_components, self.covariance_type
        if self.weights_init is not None:
            _sk_check_weights(self.weights_init, K)
        if self.means_init is not None:
            _sk_shape(_sk_float(self.means_init), (K, D), "means")
        if self.precisions_init is not None:
            _sk_check_precisions(self.precisions_init, ct, K, D)

    # -- queries
    def score_samples(self, X: ArrayLike) -> Array:
        """Log-density of each sample under the mixture."""
        self._check_fitted()
        return _g.log_prob(self._check_X(X, reset=False), self._params())

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log-likelihood of X."""
        return float(np.mean(self.score_samples(X)))

    def predict(self, X: ArrayLike) -> Array:
        self._check_fitted()
        return _g.predict(self._check_X(X, reset=False), self._params())

    def predict_proba(self, X: ArrayLike) -> Array:
        self._check_fitted()
        return _g.predict_proba(self._check_X(X, reset=False), self._params())

    def sample(self, n_samples: int = 1) -> tuple[Array, Array]:
        """(X, y): n_samples draws and their component labels (pygenmod's Philox RNG)."""
        self._check_fitted()
        if isinstance(n_samples, numbers.Integral) and not isinstance(n_samples, bool) and n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at least one sample." % n_samples
            )
        n = val.positive_int(n_samples, "n_samples")
        seed = _seed(self.random_state)
        X, y = _g.sample(self._params(), n, seed=seed)
        return X, y

    def _n_parameters(self):
        return _g.n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def bic(self, X: ArrayLike) -> float:
        X = self._check_X(X, reset=False)
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * np.log(X.shape[0])

    def aic(self, X: ArrayLike) -> float:
        X = self._check_X(X, reset=False)
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()


class BatchGaussianMixture(_MixtureParams, _Base):
    """B mixtures fitted at once to X (B, N, D) with optional sample_weight (B, N) (0 = padding).

    Same parameters as :class:`GaussianMixture`; reg_covar may be a (B,) array. Fitted attributes
    carry a leading batch axis (weights_ (B, K), means_ (B, K, D), ..., converged_ (B,),
    n_iter_ (B,), lower_bound_ (B,), flags_ (B, K)); query methods take X (B, M, D) and return
    per-set results (score: (B,)).

    ``record_lower_bounds=True`` (or verbose > 0) sets ``lower_bounds_`` (B, max n_iter_): the
    bound of every iteration of each set's kept init, NaN after the set's last iteration; the
    iterations are then driven from Python (one batched kernel call per iteration, inits one
    after another): the same results, ~1 us per set and iteration slower (about 20% on W1's
    512 sets of 256 points). Otherwise ``lower_bounds_`` is None and the compiled loop runs.
    ``verbose=1`` prints "Initialization k", "  Iteration i\t A of B sets running" every
    ``verbose_interval`` iterations and "Initialization done: c of B sets converged.";
    ``verbose >= 2`` adds time lapses, the largest |change| of the bound among running sets
    and the mean last bound.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: GMMInit = "kmeans",
        weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None,
        precisions_init: ArrayLike | None = None,
        random_state: SeedLike = None,
        warm_start: bool = False,
        warn: bool = True,
        verbose: int = 0,
        verbose_interval: int = 10,
        record_lower_bounds: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.warn = warn
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.record_lower_bounds = record_lower_bounds

    def _check_X(self, X, reset):
        X = val.float_array(X, "X", ndim=3)
        if reset:
            self.n_features_in_ = X.shape[2]
            self.n_sets_ = X.shape[0]
        elif X.shape[2] != self.n_features_in_ or X.shape[0] != self.n_sets_:
            raise ValueError(f"X: expected shape ({self.n_sets_}, M, {self.n_features_in_}), got {X.shape}")
        return X

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> BatchGaussianMixture:
        self._check_params()
        X = self._check_X(X, reset=not (self.warm_start and hasattr(self, "converged_")))
        record = bool(self.record_lower_bounds) or bool(self.verbose)
        self._set_fitted(self._fit_result(X, sample_weight, record=record))
        return self

    def fit_predict(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Array:
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def score_samples(self, X: ArrayLike) -> Array:
        self._check_fitted()
        return _g.log_prob(self._check_X(X, False), self._params())

    def score(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Array:
        """Per-set (weighted) mean log-likelihood, shape (B,)."""
        self._check_fitted()
        return _g.e_step(self._check_X(X, False), self._params(), sample_weight).lower_bound

    def predict(self, X: ArrayLike) -> Array:
        self._check_fitted()
        return _g.predict(self._check_X(X, False), self._params())

    def predict_proba(self, X: ArrayLike) -> Array:
        self._check_fitted()
        return _g.predict_proba(self._check_X(X, False), self._params())

    def sample(self, n_samples: int = 1) -> tuple[Array, Array]:
        self._check_fitted()
        return _g.sample(self._params(), val.positive_int(n_samples, "n_samples"), seed=_seed(self.random_state))

    def bic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> Array:
        self._check_fitted()
        return _g.bic(self._check_X(X, False), self._params(), sample_weight)

    def aic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> Array:
        self._check_fitted()
        return _g.aic(self._check_X(X, False), self._params(), sample_weight)
