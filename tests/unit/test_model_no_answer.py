from __future__ import annotations

import pytest

from shared.model.no_answer import NoAnswerFilter


def filtered(pieces: list[str]) -> tuple[list[str], bool]:
    marker = NoAnswerFilter()
    shown = [marker.feed(piece) for piece in pieces] + [marker.finish()]
    return shown, marker.found


@pytest.mark.parametrize(
    ("pieces", "visible"),
    [
        (["NO_ANSWER\n", "Sorry, I don't know."], "Sorry, I don't know."),
        (["NO_ANSWER: Sorry, I", " don't know."], "Sorry, I don't know."),
        (["**NO_", "ANSWER**", "\n\nSorry."], "Sorry."),
        (["`NO_ANSWER` 抱歉，", "我不知道。"], "抱歉，我不知道。"),
        (["[NO_ANSWER] 我不知道"], "我不知道"),
        (["N", "O", "_", "ANS", "WER", " - ", "Sorry."], "Sorry."),
        (["NO ANSWER. Sorry."], "Sorry."),
        (["Sorry, that is not in our help centre. ", "NO_ANSWER"], "Sorry, that is not in our help centre. "),
    ],
)
def test_the_marker_is_found_however_it_is_decorated_or_split_and_never_shown(pieces: list[str], visible: str) -> None:
    shown, found = filtered(pieces)

    assert found
    assert "".join(shown) == visible
    assert not any("NO" in piece and "ANSWER" in piece for piece in shown)


@pytest.mark.parametrize(
    "pieces",
    [
        ["Refunds take 5 to 10 working days [1]."],
        ["There is no answer ", "to that question in the manual."],  # prose, not the marker
        ["No", ", you cannot return gift cards [2]."],
        ["NO", "TE: opening hours change on holidays."],
        ["KNO_ANSWER is not a marker"],
    ],
)
def test_ordinary_text_passes_unchanged(pieces: list[str]) -> None:
    shown, found = filtered(pieces)

    assert not found
    assert "".join(shown) == "".join(pieces)


def test_only_a_tail_that_could_start_the_marker_waits_for_the_next_piece() -> None:
    marker = NoAnswerFilter()

    assert marker.feed("Refunds take ") == "Refunds take "
    assert marker.feed("5 days. N") == "5 days."
    assert marker.feed("ote the fee.") == " Note the fee."
    assert marker.finish() == ""
