"""Shared pytest set-up.

KeOps (the ``keops`` marker, ``tests/test_kernels_keops.py``) prints compile and CUDA-probe
chatter unless told otherwise; silence it before any test imports :mod:`pykeops`.
"""

import os

os.environ.setdefault("PYKEOPS_VERBOSE", "0")
