"""aecodec.batch.engine: the pool of workers fits the cluster, or is refused saying why; a cluster
that fails while the job runs is one line saying what failed and where."""

from __future__ import annotations

import pytest

from aecodec.batch.engine import BatchError, JobFailed, Pool, failure, plan_pool, run
from aecodec.batch.work import Item, Job
from aecodec.errors import ModelNotFound


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


# ------------------------------------------------------------------------------- a cluster that fails
try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="needs Ray: pip install -e '.[cluster]' (CI installs it)")

DIED = ("The actor died unexpectedly before finishing this task.\n\tclass_name: MapWorker(MapBatches(Worker))\n"
        "\tactor_id: 1f\n\tpid: 777\n\tname: x\n\tip: 10.0.0.7\nThe actor is dead because its worker process has "
        "died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error "
        "code 2. End of file. Some common causes include: (1) the process was killed by the OOM killer")
INIT = ("The actor died because of an error raised in its creation task, \x1b[36mray::MapWorker(MapBatches(Worker))"
        ".__init__()\x1b[39m (pid=9026, ip=192.0.2.2, actor_id=36)\n  File \"/x/work.py\", line 1, in __init__\n"
        "aecodec.errors.ModelNotFound: no installed weights named 'zzz'")


@needs_ray
@pytest.mark.parametrize("error, line", [
    (lambda: ray.exceptions.RayActorError(error_msg=DIED),
     "a worker died (worker pid 777 on 10.0.0.7): Worker unexpectedly exits with a connection error code 2"),
    (lambda: ray.exceptions.RayActorError(error_msg=INIT, actor_init_failed=True),
     "a worker could not start (worker pid 9026 on 192.0.2.2): no installed weights named 'zzz'"),
    (lambda: ray.exceptions.RayTaskError("f", "tb", ModelNotFound("no model 'x'"), pid=5, ip="10.1.1.1"),
     "a worker failed (worker pid 5 on 10.1.1.1): no model 'x'"),
    (lambda: ray.exceptions.NodeDiedError("Node 10.0.0.9 is dead"), "a node of the cluster died: Node 10.0.0.9 is dead"),
    (lambda: ray.exceptions.LocalRayletDiedError(), "the Ray node of this machine died"),
    (lambda: ConnectionError("GCS unreachable"), "the connection to the Ray cluster was lost: GCS unreachable"),
    (lambda: RuntimeError("odd\nmore"), "RuntimeError: odd"),
])
def test_a_cluster_failure_is_told_in_one_line_with_where_it_happened(error, line):
    assert failure(error()) == line


@needs_ray
def test_run_turns_the_clusters_failure_into_job_failed_and_lets_the_drivers_own_errors_through(tmp_path, monkeypatch):
    """engine.run on a stand-in dataset (tests/batch/fake_engine.py): a Ray error while rows stream
    back is JobFailed, after the rows before it; an error of on_row (writing the manifest) is not."""
    from tests.batch import fake_engine

    items = [Item(i, f"x{i}", None, f"/nowhere/x{i}.png", None, error="refused") for i in range(3)]
    fake_engine.install(monkeypatch, fail=(2, ray.exceptions.LocalRayletDiedError()))
    got = []
    with pytest.raises(JobFailed, match="^the Ray node of this machine died$"):
        run(Job("encode"), items, Pool(1, 1, 0.0), got.append)
    assert [r["input"] for r in got] == ["x0", "x1"] and all(r["status"] == "failed" for r in got)

    def disk_full(row):
        raise OSError(28, "No space left on device", "manifest.jsonl.partial")

    with pytest.raises(OSError, match="No space left"):
        run(Job("encode"), items, Pool(1, 1, 0.0), disk_full)


# ------------------------------------------------------------------------------- a driver that Ray ends
WATCHED = """
import os, sys
from pathlib import Path
from aecodec.batch.engine import driver_watched
with driver_watched(Path(sys.argv[1]), 5):
    if sys.argv[2] == "die":
        os._exit(1)  # what Ray's C++ core does when the Ray node of this machine dies
print("done")
"""


@pytest.mark.parametrize("how", ["die", "finish"])
def test_a_driver_that_ray_ends_at_once_still_gets_its_one_error_line(tmp_path, how):
    import subprocess
    import sys

    partial = tmp_path / "manifest.jsonl.partial"
    partial.write_text('{"input": "a.png", "status": "done"}\n{"input": "b.png", "status": "done"}\n')
    r = subprocess.run([sys.executable, "-c", WATCHED, str(partial), how], capture_output=True, text=True, timeout=60)
    if how == "die":
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.splitlines() == [
            "aecodec: error: batch job stopped: the process was ended at once, by Ray when the Ray node of this "
            "machine died (its raylet or object store failed or was killed: out of memory?) or by a signal; 2 of 5 "
            f"images finished, their rows are in {partial}, and a rerun resumes"]
    else:
        assert r.returncode == 0 and r.stdout == "done\n" and r.stderr == ""
