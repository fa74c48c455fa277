"""The chat page's script against protocol frames, in node with a minimal fake DOM and WebSocket."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "web" / "chat.html"

FAKE_BROWSER = r"""
class El {
  constructor(tag) {
    this.tagName = tag; this.children = []; this._text = ""; this.className = "";
    this.listeners = {}; this.scrollTop = 0; this.scrollHeight = 0;
    const self = this;
    this.classList = {
      remove(c) { self.className = self.className.split(" ").filter((x) => x !== c).join(" "); },
      add(c) { self.className += " " + c; },
    };
  }
  set textContent(v) { this._text = String(v); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  appendChild(c) { this.children.push(c); return c; }
  append(...cs) {
    cs.forEach((c) => this.appendChild(typeof c === "string" ? Object.assign(new El("#text"), { textContent: c }) : c));
  }
  addEventListener(name, f) { this.listeners[name] = f; }
  requestSubmit() { this.listeners.submit({ preventDefault() {} }); }
}
const els = {};
for (const id of ["log", "status", "text", "send", "title", "composer"]) els[id] = new El("div");
global.document = { getElementById: (id) => els[id], createElement: (t) => new El(t) };
global.location = {
  search: "?ws_url=ws%3A%2F%2F127.0.0.1%3A9%2Flocal&tenant=t1&key=k1", hostname: "127.0.0.1",
  origin: "http://127.0.0.1:8700", pathname: "/chat",
};
Object.defineProperty(global, "navigator", { value: { language: "zh-CN" }, configurable: true });
const store = {};
global.localStorage = { getItem: (k) => (k in store ? store[k] : null), setItem: (k, v) => { store[k] = String(v); } };
global.window = global;
const sockets = [];
class FakeWS {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 1; sockets.push(this); }
  send(d) { this.sent.push(JSON.parse(d)); }
}
FakeWS.OPEN = 1;
global.WebSocket = FakeWS;
global.setTimeout = () => 0;
function check(ok, what) { if (!ok) throw new Error(what); }
"""

SCENARIO = r"""
const ws = sockets[0];
const url = new URL(ws.url);
check(url.searchParams.get("tenant") === "t1" && url.searchParams.get("key") === "k1", "query " + ws.url);
// Agents see the visitor's language and page (without its query).
check(url.searchParams.get("lang") === "zh-CN", "lang " + ws.url);
check(url.searchParams.get("page") === "http://127.0.0.1:8700/chat", "page " + ws.url);
// A first visit: no identity yet; the server issues it (the session frame) and the page keeps it.
check(!url.searchParams.get("visitor") && !url.searchParams.get("token"), "no identity yet in " + ws.url);
ws.onopen();
check(ws.sent[0].action === "session", "session asked first " + JSON.stringify(ws.sent[0]));
ws.onmessage({ data: JSON.stringify({ type: "session", visitorId: "v_1", visitorToken: "vt1.v_1.sig" }) });
check(localStorage.getItem("kefu.t1.token") === "vt1.v_1.sig", "token kept");
ws.sent.shift();

els.text.value = "hello";
els.composer.requestSubmit();
const sent = ws.sent[0];
check(sent.action === "sendMessage" && sent.text === "hello", "frame " + JSON.stringify(sent));
check(sent.clientMessageId && !sent.conversationId, "ids " + JSON.stringify(sent));

const frame = (o) => ws.onmessage({ data: JSON.stringify(o) });
frame({ type: "ack", clientMessageId: sent.clientMessageId, messageId: "m1", conversationId: "c1" });
check(!els.log.children[0].className.includes("pending"), "ack not rendered");

// Deltas out of order are shown in seq order.
frame({ type: "answer.delta", conversationId: "c1", messageId: "m1.a", seq: 1, text: "world" });
frame({ type: "answer.delta", conversationId: "c1", messageId: "m1.a", seq: 0, text: "hello " });
const bot = els.log.children[1];
check(bot.textContent === "hello world", "deltas: " + bot.textContent);

const citations = [
  { documentId: "d1", title: "Doc", snippet: "snip", url: "https://x.test/a" },
  { documentId: "d2", title: "Other", snippet: "s2" },
];
frame({ type: "answer.end", conversationId: "c1", messageId: "m1.a", text: "Hello [1] world [2][3].", citations });
check(bot.textContent.startsWith("Hello [1] world [2]."), "end: " + bot.textContent);
check(bot.textContent.includes("Doc") && bot.textContent.includes("snip"), "citations: " + bot.textContent);
const sources = bot.children.find((c) => c.className === "citations");
check(sources.children[0].children[0].href === "https://x.test/a", "citation link");
// [1] links to the first source, [2] (no URL) labels the second, [3] names no source and is dropped.
const refs = bot.children.filter((c) => c.className === "cite");
check(refs.length === 2 && refs[0].tagName === "a" && refs[0].href === "https://x.test/a", "marker link");
check(refs[1].tagName === "span" && refs[1].title === "Other" && !bot.textContent.includes("[3]"), "markers");
frame({ type: "answer.delta", conversationId: "c1", messageId: "m1.a", seq: 2, text: "late" });
check(!bot.textContent.includes("late"), "a late delta changed the final text");

els.text.value = "again";
els.composer.requestSubmit();
check(ws.sent[1].conversationId === "c1", "conversation not reused");
frame({ type: "error", code: "rate_limited", message: "slow down", clientMessageId: ws.sent[1].clientMessageId });
frame({ message: "Internal server error", connectionId: "x", requestId: "y" });
const texts = els.log.children.map((c) => c.textContent);
check(texts.includes("rate_limited: slow down"), texts.join("|"));
check(texts.includes("Internal server error"), texts.join("|"));
console.log("chat.html OK");
"""


def test_page_is_self_contained() -> None:
    html = PAGE.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"(?!data:)", html), "no external scripts or styles"
    assert re.search(r"<link rel=\"icon\"[^>]+href=\"data:image/svg\+xml,", html), "an inline favicon"


def test_script_renders_ack_deltas_end_citations_and_errors(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = re.search(r"<script>(.*)</script>", PAGE.read_text(encoding="utf-8"), re.S)
    assert script is not None
    program = tmp_path / "chat_page.js"
    program.write_text(FAKE_BROWSER + script.group(1) + SCENARIO, encoding="utf-8")
    completed = subprocess.run([node, str(program)], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    assert "chat.html OK" in completed.stdout
