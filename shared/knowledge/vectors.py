"""Unit vectors: every embedding kefu stores or searches with has length 1, so a dot product is the
cosine (both index backends rely on it)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

# numpy reads an .npy header with ast.literal_eval, and CPython 3.11's AST constructor is not safe
# across threads (SystemError "AST constructor recursion depth mismatch" when two threads load at
# once, as the emulator's and the tests' threads do). Loads are rare (once per index version), so they
# take turns.
NPY_READ_LOCK = threading.Lock()


def load_npy(source: Any) -> Any:
    """One .npy array (no pickles), read under ``NPY_READ_LOCK``."""
    with NPY_READ_LOCK:
        return np.load(source, allow_pickle=False)


def unit_rows(matrix: Any) -> Any:
    """Each row scaled to length 1 (all-zero rows stay zero), as float32."""
    rows = np.asarray(matrix, dtype=np.float32)
    return (rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
