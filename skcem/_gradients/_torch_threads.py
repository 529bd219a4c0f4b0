"""PyTorch on one thread while a search's batch is small, on a CPU.

PyTorch splits an operation across its intra-op threads (one per core by default) once it is
large enough, and some at any size (a softmax over rows). A parallel region waits for every
thread, and on a CPU that other processes keep busy the operating system deschedules some of
them: at a load of 3 on 2 cores a softmax of 10 x 3 numbers took 554 us with two threads against
1.8 us with one, and a CEM search of a small tabular network ran eight times as long. A search's
evaluations are small (a batch of rows, one at a time), so below :data:`SMALL_BATCH` numbers
it runs on one thread; larger batches keep the user's setting. The number of threads is a
function of the batch alone, so that the answers do not depend on the machine's load.
"""

from contextlib import contextmanager

import torch

# rows x features of a batch below which its search runs on one PyTorch thread: two of
# PyTorch's grains (32,768 numbers), the size below which it runs element-wise operations on
# one thread itself
SMALL_BATCH = 2**16


@contextmanager
def search_threads(n_numbers, device):
    """One intra-op thread for a search over ``n_numbers`` numbers on a CPU ``device`` when
    that is below :data:`SMALL_BATCH`; the previous setting restored on exit."""
    previous = torch.get_num_threads()
    fewer = device.type == "cpu" and n_numbers < SMALL_BATCH and previous > 1
    if fewer:
        torch.set_num_threads(1)
    try:
        # (out of a caller's inference_mode: the search's tensors are differentiated)
        with torch.inference_mode(False):
            yield
    finally:
        if fewer:
            torch.set_num_threads(previous)
