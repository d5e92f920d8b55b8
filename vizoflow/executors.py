"""Where batch jobs run: here, one after another, or as Ray tasks (local or a cluster)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from vizoflow.errors import ConfigError


class LocalExecutor:
    """Runs jobs in this process, in order, with an overall progress bar."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[..., Any], jobs: Sequence[tuple], progress: bool = True) -> list[Any]:
        """``fn(*job)`` for every job, results in job order."""
        results = []
        for job in tqdm(jobs, unit="video", desc="videos", disable=not progress or len(jobs) < 2, position=0):
            results.append(fn(*job))
        return results


class RayExecutor:
    """Runs each job as a Ray task (``pip install 'vizoflow[ray]'``).

    Args:
        address: A Ray cluster (``ray://head:10001`` or ``auto``); None starts a local Ray.
        num_cpus: CPUs of a local Ray (None: all).
        cpus_per_job: CPUs each job reserves; the detector and tracker use two threads.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_job: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("batch.executor=ray needs Ray: pip install 'vizoflow[ray]'") from None
        self._ray = ray
        self.address, self.num_cpus, self.cpus_per_job = address, num_cpus, cpus_per_job
        self._started = False

    def __enter__(self) -> RayExecutor:
        if not self._ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            self._ray.init(log_to_driver=False, include_dashboard=False, **kwargs)
            self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._ray.shutdown()

    def map(self, fn: Callable[..., Any], jobs: Sequence[tuple], progress: bool = True) -> list[Any]:
        """Submit every job at once; results in job order as they finish."""
        remote = self._ray.remote(num_cpus=self.cpus_per_job)(fn)
        refs = [remote.remote(*job) for job in jobs]
        pending, bar = list(refs), tqdm(total=len(refs), unit="video", desc="videos (ray)", disable=not progress)
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            bar.update(len(done))
        bar.close()
        return self._ray.get(refs)


def build_executor(name: str, address: str | None = None, num_cpus: int | None = None) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray``."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, num_cpus)
    raise ConfigError(f"batch.executor must be 'local' or 'ray', got {name!r}")
