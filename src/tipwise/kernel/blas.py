"""How many threads numpy's BLAS (OpenBLAS) may use while a block of work runs.

OpenBLAS starts a thread per core and spreads a large matrix product over them. The
learner's products (a batch's Gram matrices, the blocks it inverts) are large enough
for that, and on a 2-core machine the second thread gains nothing: the same 20,000
rewards took 3.5-4.1 s of CPU with the default threads and 2.0-2.2 s with one, in the
same wall time (`tipwise bench decide --only learner`), and the core it takes is the one
the app decides on. A decision's products are another matter: LinUCB's pick over 100
dense candidates ran at p50 0.038 ms with two threads and 0.056-0.088 ms with one. So the
limit holds while the learner works (`BlasThreads.limited`), not for the whole process.
OpenBLAS has one thread count per process: a pick in another thread during a learner's
batch runs with the learner's limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Imported for its side effect: threadpoolctl finds only the libraries already loaded, and numpy loads its BLAS.
import numpy  # noqa: F401
from threadpoolctl import ThreadpoolController


class BlasThreads:
    """Limits numpy's BLAS to `threads` threads for the length of a `with limited():` block."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("BLAS needs at least one thread")
        self.threads = threads
        self._controller: ThreadpoolController | None = None
        self._lock = threading.Lock()

    @contextmanager
    def limited(self) -> Iterator[None]:
        with self._lock:
            if self._controller is None:
                # Finding the loaded libraries walks the process's shared objects: once.
                self._controller = ThreadpoolController()
            controller = self._controller
        with controller.limit(limits=self.threads, user_api="blas"):
            yield


def blas_threads() -> list[int]:
    """Return the thread count of each BLAS library loaded in this process."""
    return [int(pool["num_threads"]) for pool in ThreadpoolController().info() if pool.get("user_api") == "blas"]
