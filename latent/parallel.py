"""Dask: a local `distributed` cluster by default, or an existing scheduler when `dask.address` is set."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from latent.config import DaskConfig
from latent.errors import LatentError


@contextlib.contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[object]:
    """Yield a `distributed.Client`; a local cluster started here is closed on exit."""
    from distributed import Client, LocalCluster

    if cfg.address:
        try:
            client = Client(cfg.address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise LatentError(f"dask.address: cannot reach the Dask scheduler at {cfg.address} ({exc})") from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=cfg.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        processes=True,
        # a free port on loopback only (None means 8787 here, which concurrent runs fight over; ":0" is every interface)
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        yield client
