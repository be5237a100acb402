"""Fast batched checks that actions lie in a space, with errors that say why not."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def check_batch_actions(space: spaces.Space, actions: np.ndarray, batch_size: int) -> np.ndarray:
    """Validate a batch of actions against a single-env ``space`` and return them as an array.

    Raises:
        ValueError: naming the offending replica, the value and the allowed range.
    """
    actions = np.asarray(actions)
    if isinstance(space, spaces.MultiDiscrete) and actions.dtype.kind in "iu":
        # the common case, in as few array operations as possible: integer positions of the
        # right shape, all in range
        nvec = space.nvec
        if (
            actions.shape == (batch_size, *nvec.shape)
            and not space.start.any()
            and actions.min() >= 0
            and (actions < nvec).all()
        ):
            return actions.astype(np.int64, copy=False)
    if isinstance(space, spaces.Discrete):
        if actions.size != batch_size:
            got = actions.shape[1:] if actions.shape[:1] == (batch_size,) else actions.shape
            raise ValueError(
                f"action has shape {got}, expected a single integer (shape ()) for the action "
                f"space {space}"
            )
        actions = actions.reshape(batch_size)
        if not np.issubdtype(actions.dtype, np.integer):
            if not np.all(np.mod(actions, 1) == 0):
                raise ValueError(f"action must be an integer in {space}, got {actions!r}")
            actions = actions.astype(np.int64)
        lo, hi = space.start, space.start + space.n
        bad = (actions < lo) | (actions >= hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"action {actions[i]!r} (replica {i}) is outside the action space {space}: "
                f"allowed values are integers {lo}..{hi - 1}"
            )
        return actions
    shape = (batch_size, *(space.shape or ()))
    if actions.shape != shape:
        if actions.size == int(np.prod(shape)):
            actions = actions.reshape(shape)
        else:
            got = actions.shape[1:] if actions.ndim > len(shape) - 1 else actions.shape
            raise ValueError(
                f"action has shape {got}, expected {space.shape} for the action space {space}"
            )
    if isinstance(space, spaces.MultiDiscrete):
        nvec = space.nvec
        bad = (actions < space.start) | (actions >= space.start + nvec)
        if np.issubdtype(actions.dtype, np.floating):
            bad |= np.mod(actions, 1) != 0
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(batch_size, -1).any(axis=1))[0])
            raise ValueError(
                f"action {actions[i].tolist()} (replica {i}) is outside the action space {space}: "
                f"entry j must be an integer in [0, nvec[j] - 1] with nvec={nvec.tolist()}"
            )
        return actions.astype(np.int64, copy=False)
    if isinstance(space, spaces.Box):
        # one pass: NaN fails both comparisons, so it is caught here too
        inside = (actions >= space.low) & (actions <= space.high)
        if not inside.all():
            if not np.all(np.isfinite(actions)):
                raise ValueError(f"action contains NaN or inf: {actions!r}")
            i = int(np.flatnonzero(~inside.reshape(batch_size, -1).all(axis=1))[0])
            raise ValueError(
                f"action {actions[i].tolist()} (replica {i}) is outside the action space {space}: "
                f"allowed range is low={space.low.tolist()} to high={space.high.tolist()}"
            )
        return actions
    if isinstance(space, spaces.MultiBinary):
        if not np.isin(actions, (0, 1)).all():
            raise ValueError(f"action must be 0/1 entries for {space}, got {actions!r}")
        return actions.astype(np.int8, copy=False)
    raise TypeError(f"unsupported action space {space}")
