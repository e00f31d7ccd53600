"""A stand-in for the Ray cluster in the batch tests that need no real one: ``connected`` yields a
pool of one worker without starting Ray, and ``ray.data.from_items`` gives a dataset that runs
:class:`~aecodec.batch.work.Worker` in this process — and can fail, as a cluster does, after some
rows. :func:`aecodec.batch.engine.run` itself runs unchanged."""

from __future__ import annotations

from contextlib import contextmanager

from aecodec.batch import engine


class Dataset:
    """What engine.run uses of a Ray dataset: map_batches (the worker class and its arguments) and
    iter_rows; ``fail`` = (k, exception) raises the exception after k rows."""

    def __init__(self, rows, fail=None):
        self.rows, self.fail, self.worker = rows, fail, None

    def map_batches(self, fn, *, fn_constructor_kwargs, **_):
        self.worker = fn(**fn_constructor_kwargs)
        return self

    def iter_rows(self):
        for n, r in enumerate(self.rows):
            if self.fail is not None and n == self.fail[0]:
                raise self.fail[1]
            yield {"row": self.worker({"item": [r["item"]]})["row"][0]}


def install(monkeypatch, fail=None) -> None:
    """Batch jobs in this test run on the stand-in (failing as ``fail`` says, if given)."""
    import ray.data

    @contextmanager
    def connected(**_):
        yield engine.Pool(1, 1, 0.0)

    monkeypatch.setattr(engine, "connected", connected)
    monkeypatch.setattr(ray.data, "from_items", lambda rows, **_: Dataset(rows, fail))
