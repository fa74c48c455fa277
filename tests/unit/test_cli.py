"""The `kefu` CLI against the admin app in-process (FastAPI's TestClient is an httpx.Client)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from functions.ingest import handler as ingest_handler
from shared import cli
from shared.admin import deps
from shared.admin.app import create_app
from shared.admin.routes import knowledge as routes
from shared.ingest.service import IngestLimits, KnowledgeIngestion
from shared.ingest.uploads import UploadPolicy, Uploads
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings
from shared.state.records import Tenant
from tests import events
from tests.support.knowledge_samples import MARKDOWN, faq_csv, make_pdf
from tests.unit.fakes import FakeUploadBucket, InMemoryStateStore, InMemoryUploadLedger
from tests.unit.test_knowledge_local_index import FakeEmbedder


def test_target_comes_from_flags_then_environment_then_local_json(tmp_path: Path) -> None:
    local = tmp_path / "local.json"
    local.write_text(json.dumps({"admin_url": "http://local:8700/", "admin_key": "ak_local"}))
    assert cli.resolve_target("http://flag", "k1", {"KEFU_ADMIN_URL": "http://env"}, local) == cli.AdminTarget(
        "http://flag", "k1"
    )
    env = {"KEFU_ADMIN_URL": "http://env", "KEFU_ADMIN_KEY": "k2"}
    assert cli.resolve_target(None, None, env, local) == cli.AdminTarget("http://env", "k2")
    assert cli.resolve_target(None, None, {}, local) == cli.AdminTarget("http://local:8700", "ak_local")
    with pytest.raises(cli.UsageError, match="make run"):
        cli.resolve_target(None, None, {}, tmp_path / "missing.json")


def test_directories_expand_to_supported_files(tmp_path: Path) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    for name in ("docs/a.md", "docs/deep/b.pdf", "docs/c.png", "docs/.hidden.md", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = cli.expand_paths([str(tmp_path / "docs"), str(tmp_path / "d.txt")], (".md", ".pdf", ".txt"))
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == ["docs/a.md", "docs/deep/b.pdf", "d.txt"]
    # What a directory walk passes over is named with its reason (dot files only counted).
    assert [(p.relative_to(tmp_path).as_posix(), why) for p, why in found.skipped] == [
        ("docs/c.png", "unsupported file type .png")
    ]
    assert found.hidden == 1
    with pytest.raises(cli.UsageError, match="no such file"):
        cli.expand_paths([str(tmp_path / "nope")], (".md",))


@pytest.fixture
def admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KnowledgeService]:
    """The CLI's HTTP client replaced by one that calls the admin app in-process, and its presigned
    POSTs by a fake bucket that hands each object to the ingest handler (as S3's event would)."""
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    knowledge = KnowledgeService(LocalHybridIndex(tmp_path / "kb", FakeEmbedder()), 0.35, 4)
    monkeypatch.setenv("KEFU_ADMIN_KEY", "ak_test")
    get_settings.cache_clear()
    deps._admin_key.cache_clear()
    bucket = FakeUploadBucket()
    ingestion = KnowledgeIngestion(store, knowledge, IngestLimits.from_settings(get_settings()))
    policy = UploadPolicy(max_bytes=get_settings().max_upload_bytes, url_seconds=900, attempt_seconds=600)
    uploads = Uploads(InMemoryUploadLedger(), bucket, store, policy, lambda: ingestion)
    app = create_app()
    app.dependency_overrides[deps._store] = lambda: store
    app.dependency_overrides[routes._knowledge] = lambda: knowledge
    app.dependency_overrides[routes._uploads] = lambda: uploads

    def client(target: cli.AdminTarget, timeout: float) -> Any:
        return TestClient(app, base_url=target.url, headers={"Authorization": f"Bearer {target.key}"})

    def post_to_bucket(url: str, fields: dict[str, str], file: tuple[str, Any, str], timeout: Any) -> Any:
        bucket.post(fields["key"], file[1].read())
        ingest_handler.handler(events.s3_object_created(fields["key"]), events.lambda_context(), uploads=uploads)
        return httpx.Response(204)

    monkeypatch.setattr(cli, "_client", client)
    monkeypatch.setattr(cli, "post_to_bucket", post_to_bucket)
    yield knowledge
    get_settings.cache_clear()
    deps._admin_key.cache_clear()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--admin-url", "http://admin.test", "--admin-key", "ak_test", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_ingest_uploads_every_file_continues_past_bad_ones_and_exits_1(admin: KnowledgeService, tmp_path: Path) -> None:
    folder = tmp_path / "kb-files"
    folder.mkdir()
    (folder / "faq.csv").write_bytes(faq_csv())
    (folder / "help.md").write_text(MARKDOWN)
    (folder / "manual.pdf").write_bytes(make_pdf([["Descale the kettle every month."]]))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    (folder / "font.ttf").write_bytes(b"\x00\x01")
    code, out, err = run("ingest", str(folder), "--tenant", "acme")
    assert code == 1
    assert "ingested 3 of 7 files" in out and f"knowledge version {admin.index.version('acme')}" in out
    assert "refused 2:" in out and "broken.pdf: corrupt_file: cannot read this PDF" in out
    assert "empty.txt: 422 empty_file" in out
    assert "skipped 2 " in out and "logo.png: unsupported file type .png" in out
    assert "font.ttf: unsupported file type .ttf" in out
    for name in ("broken.pdf", "empty.txt", "logo.png", "font.ttf"):  # each named once, in one place
        assert out.count(name) == 1, (name, out)
    assert "refused" not in err and ".png" not in err  # stderr has only the progress bar
    found = admin.search("acme", admin_config(), "descale the kettle", 1)
    assert found.passages[0].document_id == "manual.pdf"


def test_two_files_with_the_same_name_are_not_indexed_over_each_other(admin: KnowledgeService, tmp_path: Path) -> None:
    # Their document id comes from the name: the second would silently replace the first.
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "README.md").write_text("# Shop\n\nThe shop opens at nine.")
    (tmp_path / "shop" / "returns").mkdir()
    (tmp_path / "shop" / "returns" / "README.md").write_text("# Returns\n\nReturns are free for 30 days.")
    code, out, _ = run("ingest", str(tmp_path / "shop"), "--tenant", "acme", "--quiet")
    assert code == 1
    assert "ingested 1 of 2 files" in out and "refused 1:" in out
    assert f"returns/README.md: duplicate_document: {tmp_path / 'shop' / 'README.md'} is also document" in out
    assert [d.title for d in admin.index.documents("acme")] == ["Shop"]


def admin_config() -> Any:
    from shared.tenant_config.retrieval import RetrievalConfig

    return RetrievalConfig(min_answer_score=0.0)


def test_ingest_of_good_files_exits_0_and_a_bad_tenant_is_reported(admin: KnowledgeService, tmp_path: Path) -> None:
    good = tmp_path / "notes.txt"
    good.write_text("Opening hours are 9 to 5.")
    code, out, _ = run("ingest", str(good), "--tenant", "acme", "--quiet")
    assert code == 0 and "ingested 1 of 1 files (1 chunks)" in out
    many = [str(good)] + [str(tmp_path / f"more{n}.txt") for n in range(5)]
    for name in many[1:]:
        Path(name).write_text("More notes.")
    code, out, err = run("ingest", *many, "--tenant", "nobody", "--quiet")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "nothing uploaded" in err and "unknown tenant 'nobody'" in err


def test_documents_lists_ids_that_delete_takes(admin: KnowledgeService, tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_bytes(faq_csv())
    (tmp_path / "help.md").write_text(MARKDOWN)
    run("ingest", str(tmp_path / "faq.csv"), str(tmp_path / "help.md"), "--tenant", "acme", "--quiet")
    code, out, _ = run("documents", "--tenant", "acme")
    assert code == 0 and out.startswith("2 document(s) in acme")
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == ["faq.csv", "help.md"]
    assert [d.document_id for d in admin.index.documents("acme")] == listed
    code, out, _ = run("delete", "help.md", "--tenant", "acme")
    assert code == 0 and "deleted 'help.md'" in out
    assert [d.document_id for d in admin.index.documents("acme")] == ["faq.csv"]
    code, _, err = run("delete", "help.md", "--tenant", "acme")
    assert code == 1 and "not in the knowledge base" in err and "kefu documents --tenant acme" in err


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_quietly(admin: KnowledgeService, tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_bytes(faq_csv())
    run("ingest", str(tmp_path / "faq.csv"), "--tenant", "acme", "--quiet")
    err = io.StringIO()
    argv = ["--admin-url", "http://admin.test", "--admin-key", "ak_test", "search", "delivery", "--tenant", "acme"]
    assert cli.main(argv, out=ClosedPipe(), err=err) == 1
    assert err.getvalue() == ""


def test_every_option_has_help_text() -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in {"kefu": parser, **commands.choices}.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    calibrate_help = commands.choices["calibrate"].format_help()
    assert "--target-decline SHARE" in calibrate_help and "0.5-0.99" in calibrate_help


def test_usage_errors_exit_2_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .kefu/local.json here
    for name in ("KEFU_ADMIN_URL", "KEFU_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    err = io.StringIO()
    assert cli.main(["ingest", "x.md", "--tenant", "t"], out=io.StringIO(), err=err) == 2
    assert "--admin-url" in err.getvalue()
    code, _, error = run("ingest", str(tmp_path / "missing.pdf"), "--tenant", "acme")
    assert code == 2 and "no such file" in error


def test_search_and_calibrate_commands(admin: KnowledgeService, tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_bytes(faq_csv())
    run("ingest", str(tmp_path / "faq.csv"), "--tenant", "acme", "--quiet")
    code, out, _ = run("search", "When will my parcel arrive?", "--tenant", "acme")
    assert code == 0 and "the bot answers" in out and "faq.csv [Orders: How long does delivery take?]" in out
    probes = tmp_path / "off.txt"
    probes.write_text("\n".join(["weather", "football", "poem", "stocks", "movies", "jokes"]))
    code, out, _ = run("calibrate", "--tenant", "acme", "--off-topic", str(probes), "--dry-run")
    assert code == 0 and "(would set (dry run))" in out and "of 6 off-topic questions" in out
    # Without examples: the knowledge's own near misses, the expected rates and the trade-off.
    code, out, _ = run("calibrate", "--tenant", "acme", "--target-decline", "0.8")
    assert code == 0 and "(set)" in out and "near misses made from the knowledge's own words" in out
    assert "reworded" in out and "trade-off (--target-decline): 70% declined -> threshold" in out


def test_the_admin_options_work_after_the_command_too(admin: KnowledgeService, monkeypatch: pytest.MonkeyPatch) -> None:
    # `kefu documents --tenant t --admin-key …` is how people type it; before the command works as well.
    seen: list[cli.AdminTarget] = []

    def documents(args: Any, target: cli.AdminTarget, out: Any, err: Any) -> int:
        seen.append(target)
        return 0

    monkeypatch.setattr(cli, "documents", documents)
    monkeypatch.delenv("KEFU_ADMIN_KEY")
    assert cli.main(["documents", "--tenant", "acme", "--admin-url", "http://a.test", "--admin-key", "k1"]) == 0
    assert cli.main(["--admin-url", "http://b.test", "--admin-key", "k2", "documents", "--tenant", "acme"]) == 0
    parsed = cli.build_parser().parse_args(["--timeout", "5", "search", "q", "--tenant", "acme"])
    assert parsed.timeout == 5.0 and parsed.admin_key is None
    assert [(t.url, t.key) for t in seen] == [("http://a.test", "k1"), ("http://b.test", "k2")]
