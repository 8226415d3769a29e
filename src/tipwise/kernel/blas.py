"""How many threads numpy's BLAS (OpenBLAS) may use in this process.

OpenBLAS starts a thread per core by default and spreads a large matrix product over
them. The learner's products (a batch's Gram matrices, the blocks it inverts) are large
enough for that, and on a 2-core machine the second thread halves nothing: it took the
learner's CPU time from 1.6-2.2 s to 3.3-3.5 s for the same 20,000 rewards, in about the
same wall time (`tipwise bench decide --only learner`), while taking the core the app
process decides on. A decision's products are small and run on one thread either way.
"""

from __future__ import annotations

# Imported for its side effect: threadpoolctl limits only the libraries already loaded, and numpy loads its BLAS.
import numpy  # noqa: F401
from threadpoolctl import threadpool_info, threadpool_limits


def limit_blas_threads(threads: int) -> None:
    """Let the BLAS libraries loaded in this process (numpy's) use at most `threads` threads from now on."""
    if threads < 1:
        raise ValueError("BLAS needs at least one thread")
    threadpool_limits(limits=threads, user_api="blas")


def blas_threads() -> list[int]:
    """Return the thread count of each BLAS library loaded in this process."""
    return [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"]
