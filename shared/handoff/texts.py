"""What visitors are told about people taking over, in their language (English unless Chinese)."""

from __future__ import annotations

from shared.model.language import detect_language
from shared.state.records import Conversation

_TEXTS: dict[str, tuple[str, str]] = {
    "unavailable": (
        "Sorry, our team can't chat here. Our assistant will keep helping you.",
        "抱歉，这里暂不提供人工客服，智能助手会继续为您服务。",
    ),
    "already_waiting": (
        "You're in the queue: a member of our team will reply here.",
        "您已在排队中，客服会在这里回复您。",
    ),
    "transferred": ("You're now chatting with {agent}.", "已为您转接至客服 {agent}。"),
    "resolved": (
        "{agent} marked this conversation as resolved. Write here any time: our assistant will answer.",
        "客服 {agent} 已将本次会话标记为已解决。如有新问题，直接留言，智能助手会为您解答。",
    ),
    "message_left": (
        "Thanks, we have your message. We'll get back to you at {contact}.",
        "已收到您的留言，我们会通过 {contact} 联系您。",
    ),
    "returned_to_bot": (
        "You're chatting with our assistant again. Ask for a person any time.",
        "已切换回智能助手为您服务，如需人工客服可随时提出。",
    ),
}


def notice_language(conversation: Conversation, said: str | None = None) -> str | None:
    """The language a notice is written in: the one the visitor's connection declared, else that of
    the visitor's own words (``said``: the message at hand, else the last one kept as the preview),
    judged by the share of Chinese characters. A channel or page that declares nothing still gets
    notices in the language the visitor writes."""
    if conversation.visitor_language:
        return conversation.visitor_language
    words = said or conversation.preview
    return detect_language(words) if words and words.strip() else None


def chinese(language: str | None) -> bool:
    return (language or "").lower().startswith("zh")


def notice_text(code: str, language: str | None, **values: str) -> str:
    english, zh = _TEXTS[code]
    return (zh if chinese(language) else english).format(**values)
