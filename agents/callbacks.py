"""Training callbacks: the learning curve on evaluation seeds."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.envs import sync_normalization
from agents.evaluation import run_episodes


class LearningCurveCallback(BaseCallback):
    """Evaluates the model on fixed evaluation seeds every ``eval_freq`` environment steps.

    Like SB3's ``EvalCallback`` but every point runs the same seeded episodes (in one batched
    env), so points are comparable and disjoint from training. Points are logged under
    ``eval/`` (TensorBoard), kept in :attr:`points` and appended to ``csv_path``. One point is
    taken before training and one at its end, after the final update; every step is logged
    once (a point of the ``eval_freq`` grid that falls on the last step, before that update,
    is replaced by the final one, not logged twice).

    Args:
        eval_env: batched evaluation env with raw rewards (frozen ``VecNormalize`` when the
            training env normalises; its statistics are synced before each point).
        first_seed: seed of the first evaluation episode.
        episodes: episodes per point.
        eval_freq: environment steps (all replicas together) between points; 0: start and end.
        metrics: final-info keys logged next to the return.
        deterministic: act deterministically.
        csv_path: file receiving ``timesteps,mean,std`` rows (``None``: none).
        points: points taken before (a run resumed from a checkpoint); the run then takes no
            point at its first step, only the next ones of the ``eval_freq`` grid.

    The point before training is best taken with :meth:`evaluate_before_training` before
    ``model.learn``: learn's first reset updates a ``VecNormalize``'s statistics, so a point
    taken when training starts scores the policy on statistics it never acted with (a warm
    start's first point would then differ from the saved policy's score).
    """

    def __init__(
        self,
        eval_env: VecEnv,
        first_seed: int,
        episodes: int,
        eval_freq: int,
        *,
        metrics: Sequence[str] = (),
        deterministic: bool = True,
        csv_path: Path | None = None,
        points: Sequence[dict[str, float]] = (),
    ) -> None:
        super().__init__()
        if eval_freq < 0:
            raise ValueError(f"eval.eval_freq: must be >= 0, got {eval_freq}")
        self.eval_env = eval_env
        self.first_seed = first_seed
        self.episodes = episodes
        self.eval_freq = eval_freq
        self.metrics = tuple(metrics)
        self.deterministic = deterministic
        self.csv_path = csv_path
        self.points: list[dict[str, float]] = [dict(p) for p in points]
        """``{timesteps, mean, std, <metric>...}`` per point, in order."""
        self._next = 0
        self._budget = 0
        """The step count training ends at or after (``learn``'s ``total_timesteps``)."""
        self._held: list[tuple[dict[str, float], float]] = []
        """Points taken with ``log=False`` and their mean episode lengths, not yet logged: the
        step-0 point until training starts, points at or past :attr:`_budget` until it ends."""

    def evaluate_before_training(self, model: BaseAlgorithm) -> None:
        """Take the step-0 point now, with ``model`` as ``learn`` will start from it.

        Call it just before ``model.learn(callback=...)`` with this callback; the point is
        logged when training starts (the model may have no logger before).
        """
        if self.points:
            raise RuntimeError("the curve already has its points; the first is taken once")
        self.model = model
        self._evaluate(log=False)

    def _on_training_start(self) -> None:
        # learn's own total_timesteps (absolute, a resumed run's steps included)
        self._budget = int(self.locals.get("total_timesteps", sys.maxsize))
        if self._held:
            self._rewrite_csv(self.points[: -len(self._held)])
            self._log_held()
        else:
            self._rewrite_csv()
            if not self.points:  # a resumed run keeps the grid of points it started with
                self._evaluate()
        if self.eval_freq > 0:
            self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps >= self._next:
            # at or past the budget this may be the last step, whose point precedes the final
            # update and is then replaced: it is logged when training ends, if it is kept
            self._evaluate(log=self.num_timesteps < self._budget)
            while self._next <= self.num_timesteps:
                self._next += self.eval_freq
        return True

    def _on_training_end(self) -> None:
        # a point taken at the last step precedes the final update: take it again
        if self.points and self.points[-1]["timesteps"] == self.num_timesteps:
            last = self.points.pop()
            if self._held and self._held[-1][0] is last:
                self._held.pop()  # never logged
            else:  # a resumed run's checkpoint point, already written
                self._rewrite_csv(self.points[: len(self.points) - len(self._held)])
        self._log_held()
        self._evaluate()

    def _evaluate(self, log: bool = True) -> dict[str, float]:
        """Take a point at the current step; ``log``: log it and append it to ``csv_path``.

        Without ``log`` the point waits in :attr:`_held` until :meth:`_log_held`.
        """
        training_env = self.model.get_env()
        if isinstance(self.eval_env, VecNormalize) and isinstance(training_env, VecNormalize):
            sync_normalization(training_env, self.eval_env)
        result = run_episodes(
            self.model,
            self.eval_env,
            self.first_seed,
            self.episodes,
            metrics=self.metrics,
            deterministic=self.deterministic,
        )
        summary = result.summary()
        point = {
            "timesteps": self.num_timesteps,
            "mean": summary["return"]["mean"],
            "std": summary["return"]["std"],
            **{m: summary[m]["mean"] for m in self.metrics},
        }
        length = float(summary["length"]["mean"])
        self.points.append(point)
        if not log:
            self._held.append((point, length))
        else:
            self._record(point, length)
        return point

    def _record(self, point: dict[str, float], length: float) -> None:
        """Log ``point`` and append it to ``csv_path``."""
        self._log(point, length)
        if self.csv_path is not None:
            with self.csv_path.open("a", newline="") as fh:
                csv.writer(fh).writerow([point[k] for k in self._columns()])

    def _log_held(self) -> None:
        """Log and write the points held back so far, in order."""
        held, self._held = self._held, []
        for point, length in held:
            self._record(point, length)

    def _log(self, point: dict[str, float], length: float) -> None:
        self.logger.record("eval/mean_return", point["mean"])
        self.logger.record("eval/std_return", point["std"])
        self.logger.record("eval/mean_length", length)
        for m in self.metrics:
            self.logger.record(f"eval/{m}", point[m])
        self.logger.record("time/total_timesteps", point["timesteps"], exclude="tensorboard")
        self.logger.dump(int(point["timesteps"]))

    def _columns(self) -> list[str]:
        return ["timesteps", "mean", "std", *self.metrics]

    def _rewrite_csv(self, points: Sequence[dict[str, float]] | None = None) -> None:
        """Write the header and ``points`` (default: all so far) to ``csv_path``."""
        if self.csv_path is None:
            return
        with self.csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(self._columns())
            rows = self.points if points is None else points
            writer.writerows([point[k] for k in self._columns()] for point in rows)
