"""The reference log-prob cache is shared by every process of a multi-process run."""

import multiprocessing

from mmbench.trainers.refcache import RefLogpCache


def _open_write_read(path, rank, barrier, results):
    try:
        barrier.wait(timeout=30)  # both processes open the fresh file at the same moment, as a 2-process run does
        cache = RefLogpCache(path)
        cache.put_many("ref", [(f"example{rank}", [1, 2, rank], -1.5 - rank)])
        barrier.wait(timeout=30)
        results.put((rank, cache.get_many("ref", [("example0", [1, 2, 0]), ("example1", [1, 2, 1])])))
        cache.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put((rank, f"{type(exc).__name__}: {exc}"))


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path):
    # Before the fix, 9-10 of 30 such starts failed with "database is locked" (switching to WAL).
    context = multiprocessing.get_context("fork")
    for trial in range(12):
        barrier, results = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_open_write_read, args=(tmp_path / f"{trial}.sqlite", rank, barrier, results))
                   for rank in (0, 1)]
        for worker in workers:
            worker.start()
        got = dict(results.get(timeout=120) for _ in workers)
        for worker in workers:
            worker.join()
        assert got == {0: [-1.5, -2.5], 1: [-1.5, -2.5]}, (trial, got)
