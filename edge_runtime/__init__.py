"""edge-detect runtime: what runs on the board (no TensorFlow here)."""

import os

# numpy's OpenBLAS otherwise starts a thread per core for the front end's small filterbank
# matmul; on a busy board the second thread is often descheduled and the first waits for it
# (benchmarks measured front end p50 20 ms -> 6.4 ms, stream RTF 0.051 -> 0.0053 with one
# thread). Set before numpy is imported; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
