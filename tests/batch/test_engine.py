"""aecodec.batch.engine: the pool of workers fits the cluster, or is refused saying why."""

from __future__ import annotations

import pytest

from aecodec.batch.engine import BatchError, plan_pool


@pytest.mark.parametrize("resources, nodes, args, want", [
    ({"CPU": 2}, [2], (None, None, None), (2, 1, 0.0)),  # default: one single-threaded worker per core
    ({"CPU": 2}, [2], (1, None, None), (1, 2, 0.0)),  # --workers 1: the cores shared out
    ({"CPU": 32}, [16, 16], (1, None, None), (1, 16, 0.0)),  # … no more than a node has
    ({"CPU": 16, "GPU": 4}, [16], (None, None, None), (4, 1, 1.0)),  # GPUs: one worker per GPU
    ({"CPU": 16, "GPU": 4}, [16], (None, None, 0), (16, 1, 0.0)),  # --gpus-per-worker 0: CPU only
    ({"CPU": 16, "GPU": 1}, [16], (None, 2, 0.5), (2, 2, 0.5)),
])
def test_the_pool_fits_the_cluster(resources, nodes, args, want):
    p = plan_pool(resources, nodes, *args)
    assert (p.workers, p.cpus_per_worker, p.gpus_per_worker) == want
    assert p.device == ("cuda" if want[2] else "cpu")


@pytest.mark.parametrize("args, message", [
    ((3, None, None), "3 workers × 1 CPU need 3 CPUs; the cluster has 2"),
    ((None, 4, None), "no node of the cluster has that many CPUs"),
    ((None, None, 1), "the cluster has 0 GPUs"),
    ((0, None, None), "at least 1"),
])
def test_a_pool_the_cluster_cannot_hold_is_refused(args, message):
    with pytest.raises(BatchError, match=message):
        plan_pool({"CPU": 2}, [2], *args)
