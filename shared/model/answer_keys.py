"""The answer cache's key: which questions count as the same question, in the same circumstances.

(tenant, normalised question, knowledge version, model identity, earlier turns, cited passages). The
knowledge version changes with any change to the tenant's knowledge, the model identity with any
change to its model settings, and the cited passages with retrieval settings, so a cached answer is
never staler than what a fresh one would say. Earlier turns are part of the key because a model
answers a follow-up from the conversation ("and how much is it?"); in practice the reused answers are
those to first questions.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from shared.knowledge.base import Passage
from shared.model.answer_model import Turn

# Punctuation and spaces around a question do not change it: "Refund time?" == "refund time".
_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _EDGES.sub("", folded)).strip()


@dataclass(frozen=True)
class AnswerKey:
    tenant_id: str
    digest: str


def answer_key(
    tenant_id: str,
    question: str,
    knowledge_version: str,
    model_identity: str,
    history: list[Turn],
    cited: Sequence[Passage] = (),
) -> AnswerKey:
    """``cited``: the passages the answer is written from; a retrieval setting that changes them
    (keyword weight, threshold, reranking) changes the key even when the knowledge did not change."""
    document = {
        "q": normalise_question(question),
        "k": knowledge_version,
        "m": model_identity,
        "h": [[turn.role, normalise_question(turn.text)] for turn in history],
        "p": [[p.document_id, hashlib.sha256(p.text.encode()).hexdigest()[:12]] for p in cited],
    }
    digest = hashlib.sha256(json.dumps(document, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]
    return AnswerKey(tenant_id=tenant_id, digest=digest)
