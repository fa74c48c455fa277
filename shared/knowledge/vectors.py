"""Unit vectors: every embedding kefu stores or searches with has length 1, so a dot product is the
cosine (both index backends rely on it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def unit_rows(matrix: Any) -> Any:
    """Each row scaled to length 1 (all-zero rows stay zero), as float32."""
    rows = np.asarray(matrix, dtype=np.float32)
    return (rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
