"""How many threads the BLAS under numpy may use in the consumer's process (DuckDB's UDF scores here).

OpenBLAS starts a thread per core and, after each matrix product, keeps the extra threads spinning
for a while in case another product follows. A batch's products are small (2,000 × 784 by 784 × 128):
on this 2-core machine a second thread saved 1.2 ms of a 2,000-image forward pass and burned 6.6 ms
of CPU that the broker, the producer and the database needed on the same cores; at 64 images it
burned 27× the CPU of one thread for no gain (docs/decisions.md, "BLAS threads and paced producers").
The limit is set through threadpoolctl, which finds the BLAS numpy loaded and calls its own setter.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_blas_threads(threads: int) -> None:
    """Process-wide: at most ``threads`` BLAS threads from now on; 0 leaves the library's choice."""
    if threads > 0:
        threadpool_limits(limits=threads, user_api="blas")
