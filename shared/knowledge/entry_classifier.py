"""A per-tenant FAQ entry model: how decisively a question points at one of the tenant's FAQ entries.

The fused score (scoring.py) says how much evidence a passage shares with the question, but not whether
that evidence singles the entry out. A near-miss question ("I am unable to join any contest" to a
fantasy-sports bot whose FAQ has "how do I join a contest?") shares words and meaning with one entry
as much as a real paraphrase does. What tells them apart is which *parts* of the wording separate the
tenant's entries from each other, and that is what a classifier trained on the entries' own phrasings
learns. So when a tenant's FAQ has paraphrases (several phrasings of one question), a softmax
regression over [USE vector, binary tf-idf of the BM25 terms] is fitted on them when the knowledge is
written, and at search time a FAQ row's fused score is multiplied by
``probability(its entry) ** PROBABILITY_EXPONENT``: a question the model cannot place among the
entries loses confidence, one it places firmly keeps its score. Prose and table chunks keep their
fused score. Measured on HINT3 in docs/quality.md.

Only the tenant's own knowledge is used (no test questions, no weights downloaded); numpy only.
The fit is full-batch gradient descent with fixed settings (chosen by cross-validation on the HINT3
*training* phrases: held-out phrasings as in-scope, held-out entries as near misses), 0.06 s for 600
phrasings of 28 entries, paid on every write. Larger FAQs (over MAX_FIT_COST: about 250 entries with
five phrasings each) are not modelled: their rows keep the fused score.

Embedded index only: the OpenSearch backend would need the fitted model stored per tenant (an S3
object read by the retrieve function); the scoring itself is client-side there too, so it would apply
the same way to the fused candidates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.knowledge.vectors import unit_rows

if TYPE_CHECKING:
    from numpy.typing import NDArray

# A FAQ row's score is multiplied by p(entry) ** this (0: the model is ignored).
PROBABILITY_EXPONENT = 0.5
# Feature scales: unit vectors times these, so the logits can be sharp without huge weights.
DENSE_SCALE = 10.0
KEYWORD_SCALE = 5.0
L2 = 1e-4
# Early-stopped: 100 iterations cross-validate as well as 300 or 1,000 on HINT3's training phrases.
ITERATIONS = 100
LEARNING_RATE = 1.0
MAX_VOCABULARY = 8192
# phrasings x features x entries: above this a fit takes too long for a write, which waits for it
# (measured on this 2-core machine at 100 iterations: 1.7e7 (HINT3's curekart) 0.06 s; 5.5e8 (200
# entries x 5 phrasings, 2,500 terms) 1 s).
MAX_FIT_COST = 1e9


@dataclass
class EntryModel:
    vocabulary: dict[str, int]
    idf: NDArray[np.float32]
    weights: NDArray[np.float32]  # (dimension + vocabulary + 1, entries)

    @property
    def entries(self) -> int:
        return int(self.weights.shape[1])

    def features(self, vectors: NDArray[np.float32], token_lists: Sequence[Sequence[str]]) -> NDArray[np.float32]:
        keyword = np.zeros((len(token_lists), len(self.vocabulary)), dtype=np.float32)
        for n, tokens in enumerate(token_lists):
            columns = [self.vocabulary[t] for t in set(tokens) if t in self.vocabulary]
            keyword[n, columns] = 1.0  # presence, not counts: phrasings are short
        keyword *= self.idf
        keyword = unit_rows(keyword)
        bias = np.ones((len(token_lists), 1), dtype=np.float32)
        return np.hstack([DENSE_SCALE * vectors.astype(np.float32), KEYWORD_SCALE * keyword, bias])

    def probabilities(self, vector: NDArray[np.float32], tokens: Sequence[str]) -> NDArray[np.float32]:
        """p(entry | question) for one question (its unit vector and BM25 terms)."""
        probabilities: NDArray[np.float32] = _softmax(self.features(vector[None, :], [tokens]) @ self.weights)[0]
        return probabilities

    def to_arrays(self) -> dict[str, Any]:
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {"terms": np.asarray(terms, dtype=str), "idf": self.idf, "weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: Any) -> EntryModel:
        terms = [str(t) for t in arrays["terms"]]
        return cls(
            vocabulary={t: n for n, t in enumerate(terms)},
            idf=np.asarray(arrays["idf"], dtype=np.float32),
            weights=np.asarray(arrays["weights"], dtype=np.float32),
        )


def _softmax(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: NDArray[np.float32] = exp / exp.sum(axis=1, keepdims=True)
    return result


def worth_fitting(phrasings: int, entries: int) -> bool:
    """A model needs at least two entries and some paraphrases (else it only restates the ranking)."""
    return entries >= 2 and phrasings > entries


def affordable(phrasings: int, entries: int, dimension: int, vocabulary: int) -> bool:
    """Whether a fit stays within MAX_FIT_COST (checked before anything is embedded for it)."""
    return phrasings * (dimension + min(vocabulary, MAX_VOCABULARY) + 1) * entries <= MAX_FIT_COST


def fit_entry_model(
    vectors: NDArray[np.float32], token_lists: Sequence[Sequence[str]], entries: Sequence[int]
) -> EntryModel | None:
    """Fit on the phrasings (unit vectors, BM25 terms) labelled with their entry (0..n-1); None when
    there is nothing to learn or the FAQ is too large to fit quickly."""
    labels = np.asarray(entries, dtype=np.int64)
    if len(labels) == 0:
        return None
    count = int(labels.max()) + 1
    if not worth_fitting(len(labels), count):
        return None
    document_freq: Counter[str] = Counter(t for tokens in token_lists for t in set(tokens))
    terms = sorted(document_freq, key=lambda t: (-document_freq[t], t))[:MAX_VOCABULARY]
    if not affordable(len(labels), count, vectors.shape[1], len(terms)):
        return None
    idf = np.asarray([np.log((1 + len(labels)) / (1 + document_freq[t])) + 1 for t in terms], dtype=np.float32)
    model = EntryModel({t: n for n, t in enumerate(terms)}, idf, np.zeros((0, 0), dtype=np.float32))
    features = model.features(vectors, token_lists)
    targets = np.zeros((len(labels), count), dtype=np.float32)
    targets[np.arange(len(labels)), labels] = 1.0
    weights = np.zeros((features.shape[1], count), dtype=np.float32)
    for _ in range(ITERATIONS):
        gradient = features.T @ (_softmax(features @ weights) - targets) / len(labels) + L2 * weights
        weights -= LEARNING_RATE * gradient
    model.weights = weights.astype(np.float32)
    return model


def apply_entry_confidence(
    scores: NDArray[np.float32],
    row_entries: NDArray[np.int64],
    probabilities: NDArray[np.float32],
    exponent: float = PROBABILITY_EXPONENT,
) -> NDArray[np.float32]:
    """Fused scores with each FAQ row (entry >= 0) multiplied by p(its entry) ** exponent."""
    on_entry = row_entries >= 0
    if exponent == 0.0 or not on_entry.any():
        return scores
    adjusted = scores.copy()
    adjusted[on_entry] *= np.power(probabilities[row_entries[on_entry]], exponent).astype(np.float32)
    return adjusted
