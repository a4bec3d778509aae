"""Shared pytest set-up.

KeOps (the ``keops`` marker, ``tests/test_kernels_keops.py``) prints compile and CUDA-probe
chatter unless told otherwise; silence it before any test imports :mod:`pykeops`.
"""

import os

import pytest
import torch

os.environ.setdefault("PYKEOPS_VERBOSE", "0")


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test, restored afterwards (tests of many small ops,
    where thread hand-offs dominate on a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
