"""``kefu``: the command line for operators; it talks to the admin API over HTTP.

    kefu ingest PATH... --tenant T      upload files (directories: every supported file inside)
    kefu search "question" --tenant T   the bot's retrieval for a question (the recall test)
    kefu calibrate --tenant T           show / move the "no good answer" threshold (set on every upload)
    kefu documents --tenant T           the documents in a tenant's knowledge base (ids for delete)
    kefu delete DOCUMENT_ID --tenant T  remove one document

Where the admin API is: --admin-url/--admin-key, else KEFU_ADMIN_URL/KEFU_ADMIN_KEY, else
``.kefu/local.json`` (written by ``make run``). Each file goes straight to the uploads bucket through a
presigned POST the admin API hands out (so any size up to the deployment's limit: API Gateway and
Lambda cap a request at ~6 MB), is ingested asynchronously, and its progress is polled until it is
indexed or failed; one bad file never stops the rest, and the exit status is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

LOCAL_JSON = Path(".kefu") / "local.json"
# The ./kefu wrapper points here, so the CLI finds `make run`'s file from any directory.
LOCAL_JSON_VARIABLE = "KEFU_LOCAL_JSON"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class AdminTarget:
    url: str
    key: str


class UsageError(Exception):
    pass


def resolve_target(url: str | None, key: str | None, environ: dict[str, str], local_json: Path) -> AdminTarget:
    """Flags, then environment, then the local runner's file."""
    url = url or environ.get("KEFU_ADMIN_URL")
    key = key or environ.get("KEFU_ADMIN_KEY")
    if (not url or not key) and local_json.is_file():
        try:
            info = json.loads(local_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {local_json}: {error}") from None
        url = url or info.get("admin_url")
        key = key or info.get("admin_key")
    if not url or not key:
        raise UsageError(
            "where is the admin API? pass --admin-url and --admin-key, set KEFU_ADMIN_URL and "
            f"KEFU_ADMIN_KEY, or run `make run` (it writes {LOCAL_JSON})"
        )
    return AdminTarget(url.rstrip("/"), key)


@dataclass(frozen=True)
class Expanded:
    """The files to upload, and those a directory walk passed over (each with its reason)."""

    files: list[Path]
    skipped: list[tuple[Path, str]]
    hidden: int = 0  # dot files and files under dot folders (.git, .DS_Store …), counted, not named


def expand_paths(paths: Sequence[str], extensions: Sequence[str]) -> Expanded:
    """Files as given, and every file with a supported extension under given directories (sorted).
    A file named on the command line is always sent (the server says why it refuses one); inside a
    directory an unsupported type is skipped here and named with its reason."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    hidden = 0
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
                if _hidden(candidate.relative_to(path)):
                    hidden += 1
                elif candidate.suffix.lower() in extensions:
                    found.append(candidate)
                else:
                    kind = candidate.suffix.lower() or "(no extension)"
                    skipped.append((candidate, f"unsupported file type {kind}"))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or directory: {raw}")
    return Expanded(list(dict.fromkeys(found)), list(dict.fromkeys(skipped)), hidden)


def _hidden(path: Path) -> bool:
    return any(part.startswith(".") for part in path.parts if part not in (".", ".."))


def _client(target: AdminTarget, timeout: float) -> Any:
    import httpx

    return httpx.Client(base_url=target.url, headers={"Authorization": f"Bearer {target.key}"}, timeout=timeout)


def _error_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"HTTP {response.status_code}: {error['message']}"
    if isinstance(body, dict) and body.get("detail"):
        return f"HTTP {response.status_code}: {body['detail']}"
    return f"HTTP {response.status_code}"


# Media types the uploads route accepts for each extension (anything else goes as octet-stream).
_CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
}
_S3_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
# How often an upload's status is asked for while it is ingested.
POLL_SECONDS = 0.5


@dataclass
class Upload:
    """One file on its way: sent to the bucket, then ingested asynchronously (its status polled)."""

    path: Path
    upload_id: str | None = None
    status: str = "uploading"
    message: str = ""
    chunks: int = 0

    @property
    def done(self) -> bool:
        return self.status in ("indexed", "failed")


def post_to_bucket(url: str, fields: dict[str, str], file: tuple[str, Any, str], timeout: Any) -> Any:
    """The presigned POST: the policy's fields first, the file last (S3 reads the form in order)."""
    import httpx

    return httpx.post(url, data=fields, files={"file": file}, timeout=timeout)


def _refusal(response: Any) -> str:
    """``413 file_too_large: …`` from the admin API's error body."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return _error_message(response)


def _send(client: Any, tenant: str, path: Path) -> Upload:
    """Ask for a presigned upload, then POST the file straight to the bucket (any size: the file does
    not pass through the admin API, which API Gateway caps at ~6 MB)."""
    import httpx

    upload = Upload(path)
    content_type = _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    try:
        declared = {"filename": path.name, "contentType": content_type, "size": path.stat().st_size}
        ticket = client.post(f"/v1/tenants/{tenant}/knowledge/uploads", json=declared)
        if ticket.status_code != 201:
            upload.status, upload.message = "failed", _refusal(ticket)
            return upload
        body = ticket.json()
        upload.upload_id = body["uploadId"]
        with path.open("rb") as handle:
            sent = post_to_bucket(body["url"], body["fields"], (path.name, handle, content_type), client.timeout)
    except httpx.HTTPError as error:
        upload.status, upload.message = "failed", f"request failed: {error}"
        return upload
    except OSError as error:
        upload.status, upload.message = "failed", f"cannot read the file: {error}"
        return upload
    if sent.status_code >= 300:
        found = _S3_MESSAGE.search(sent.text)
        reason = found.group(1) if found else sent.text[:200]
        upload.status, upload.message = "failed", f"the bucket refused the file: HTTP {sent.status_code}: {reason}"
    else:
        upload.status = "pending"
    return upload


def _poll(client: Any, tenant: str, upload: Upload) -> None:
    response = client.get(f"/v1/tenants/{tenant}/knowledge/uploads/{upload.upload_id}")
    if response.status_code != 200:
        upload.status, upload.message = "failed", _error_message(response)
        return
    body = response.json()
    upload.status = body["status"]
    if upload.status == "indexed":
        upload.chunks = int(body.get("chunks") or 0)
        upload.message = f"{upload.chunks} chunks as {body.get('documentId')!r}"
    elif upload.status == "failed":
        error = body.get("error") or {}
        upload.message = f"{error.get('code', '')}: {error.get('message', '')}"


def _wait(client: Any, tenant: str, uploads: list[Upload], bar: Any, deadline: float) -> None:
    """Poll the uploads being ingested until each is indexed or failed (or the deadline passes), the
    bar counting finished files and showing how many are at each step."""
    import time

    while True:
        waiting = [upload for upload in uploads if not upload.done]
        steps = {step: sum(1 for u in waiting if u.status == step) for step in ("pending", "parsing", "embedding")}
        bar.set_postfix_str(", ".join(f"{n} {step}" for step, n in steps.items() if n) or "done", refresh=True)
        if not waiting:
            return
        if time.monotonic() > deadline:
            for upload in waiting:
                upload.message = f"still {upload.status} when kefu stopped waiting (upload id {upload.upload_id})"
                upload.status = "failed"
            return
        time.sleep(POLL_SECONDS)
        for upload in waiting:
            _poll(client, tenant, upload)
            if upload.done:
                bar.update(1)


def _same_document(files: list[Path]) -> dict[Path, Path]:
    """Each file whose document id (from its name) an earlier file already has, with that file: two
    files named README.md in different folders would replace each other, one of them silently."""
    from shared.ingest.errors import FileRejected
    from shared.ingest.files import document_id_for

    seen: dict[str, Path] = {}
    later: dict[Path, Path] = {}
    for path in files:
        try:
            document_id = document_id_for(path.name)
        except FileRejected:
            continue  # the server says why it refuses the name
        if document_id in seen:
            later[path] = seen[document_id]
        else:
            seen[document_id] = path
    return later


def ingest(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    from shared.ingest.files import SUPPORTED_EXTENSIONS

    expanded = expand_paths(args.paths, SUPPORTED_EXTENSIONS)
    files, skipped = expanded.files, expanded.skipped
    if not files:
        raise UsageError(f"no files to ingest (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    duplicates = _same_document(files)
    import time

    from tqdm import tqdm

    with _client(target, args.timeout) as client:
        # One request first: an unknown tenant or a wrong key is one line, not one per file.
        response = client.get(f"/v1/tenants/{args.tenant}/knowledge/version")
        if response.status_code != 200:
            print(f"kefu: nothing uploaded: {_error_message(response)}", file=err)
            return EXIT_FAILED
        with tqdm(total=len(files), unit="file", file=err, disable=args.quiet, dynamic_ncols=True) as bar:
            uploads = []
            for path in files:
                bar.set_postfix_str(f"uploading {path.name[-40:]}", refresh=True)
                first = duplicates.get(path)
                if first is not None:
                    message = f"duplicate_document: {first} is also document {path.name!r} (ids come from file names)"
                    uploads.append(Upload(path, status="failed", message=f"{message}; ingest it on its own"))
                else:
                    uploads.append(_send(client, args.tenant, path))
                if uploads[-1].done:
                    bar.update(1)
            _wait(client, args.tenant, uploads, bar, time.monotonic() + args.wait)
        version = client.get(f"/v1/tenants/{args.tenant}/knowledge/version")
    failures = [(upload.path, upload.message) for upload in uploads if upload.status != "indexed"]
    chunks = sum(upload.chunks for upload in uploads)
    total = len(files) + len(skipped)
    summary = f"ingested {len(files) - len(failures)} of {total} files ({chunks} chunks) into {args.tenant}"
    if version.status_code == 200:
        summary += f"; knowledge version {version.json()['knowledgeVersion']}"
    print(summary, file=out)
    if failures:
        print(f"refused {len(failures)}:", file=out)
        for path, message in failures:
            print(f"  {path}: {message}", file=out)
    if skipped:
        print(f"skipped {len(skipped)} (supported: {', '.join(SUPPORTED_EXTENSIONS)}):", file=out)
        for path, reason in skipped:
            print(f"  {path}: {reason}", file=out)
    if expanded.hidden:
        print(f"({expanded.hidden} hidden files, under dot folders or named .*, not read)", file=out)
    return EXIT_FAILED if failures else EXIT_OK


def search(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    with _client(target, args.timeout) as client:
        params: dict[str, Any] = {"q": args.query, "k": args.k, "all": "true"}
        response = client.get(f"/v1/tenants/{args.tenant}/knowledge/search", params=params)
    if response.status_code != 200:
        print(_error_message(response), file=err)
        return EXIT_FAILED
    body = response.json()
    verdict = "answers" if body["matched"] else "declines (no passage reaches the threshold)"
    print(f"threshold {body['threshold']:.3f}, best {body['bestScore'] or 0:.3f}: the bot {verdict}", file=out)
    for result in body["results"]:
        mark = "*" if result["aboveThreshold"] else " "
        where = f" [{result['section']}]" if result.get("section") else ""
        print(f"{mark} {result['score']:.3f}  {result['documentId']}{where}: {result['snippet']}", file=out)
    return EXIT_OK


def calibrate(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    body: dict[str, Any] = {"apply": not args.dry_run}
    if args.target_decline is not None:
        body["targetDecline"] = args.target_decline
    if args.off_topic:
        body["offTopic"] = [
            line.strip() for line in Path(args.off_topic).read_text("utf-8").splitlines() if line.strip()
        ]
    if args.in_scope:
        body["inScope"] = [line.strip() for line in Path(args.in_scope).read_text("utf-8").splitlines() if line.strip()]
    with _client(target, args.timeout) as client:
        response = client.post(f"/v1/tenants/{args.tenant}/knowledge/calibrate", json=body)
    if response.status_code != 200:
        print(_error_message(response), file=err)
        return EXIT_FAILED
    report = response.json()
    action = "set" if report["applied"] else "would set (dry run)"
    print(
        f"threshold {report['previousThreshold']:.4f} -> {report['threshold']:.4f} ({action}): declines "
        f"{report['offTopicDeclineRate']:.0%} of {report['offTopicQuestions']} off-topic questions",
        file=out,
    )
    if report.get("nearMissDeclineRate") is not None:
        print(
            f"  of which {report['nearMissQuestions']} near misses made from the knowledge's own words: "
            f"{report['nearMissDeclineRate']:.0%} declined",
            file=out,
        )
    if report.get("inScopeAnswerRate") is not None:
        print(
            f"still answers {report['inScopeAnswerRate']:.0%} of {report['inScopeQuestions']} in-scope questions",
            file=out,
        )
    if report.get("paraphraseAnswerRate") is not None:
        print(f"  and {report['paraphraseAnswerRate']:.0%} of them reworded", file=out)
    points = [p for p in report.get("tradeoff", []) if p.get("paraphraseAnswerRate") is not None]
    if points:
        print(
            "trade-off (--target-decline): "
            + ", ".join(
                f"{p['targetDecline']:.0%} declined -> threshold {p['threshold']:.3f}, "
                f"{p['paraphraseAnswerRate']:.0%} reworded answered"
                for p in points
            ),
            file=out,
        )
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=out)
    return EXIT_OK


def documents(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    with _client(target, args.timeout) as client:
        response = client.get(f"/v1/tenants/{args.tenant}/knowledge")
    if response.status_code != 200:
        print(_error_message(response), file=err)
        return EXIT_FAILED
    body = response.json()
    listed = body["documents"]
    print(f"{len(listed)} document(s) in {args.tenant}; knowledge version {body['knowledgeVersion']}", file=out)
    width = max((len(document["documentId"]) for document in listed), default=0)
    for document in listed:
        where = f"  {document['url']}" if document.get("url") else ""
        print(
            f"  {document['documentId']:<{width}}  {document['chunks']:>4} chunks  {document['title']}{where}", file=out
        )
    return EXIT_OK


def delete(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    from urllib.parse import quote

    with _client(target, args.timeout) as client:
        response = client.delete(f"/v1/tenants/{args.tenant}/knowledge/{quote(args.document_id, safe='')}")
    if response.status_code != 200:
        print(f"{_error_message(response)} (`kefu documents --tenant {args.tenant}` lists the ids)", file=err)
        return EXIT_FAILED
    body = response.json()
    print(f"deleted {body['documentId']!r}; knowledge version {body['knowledgeVersion']}", file=out)
    return EXIT_OK


def dead_letters(args: argparse.Namespace, target: AdminTarget, out: TextIO, err: TextIO) -> int:
    with _client(target, args.timeout) as client:
        if args.redrive:
            response = client.post("/v1/dead-letters/redrive", params={"limit": args.limit})
        else:
            response = client.get("/v1/dead-letters", params={"limit": args.limit})
    if response.status_code != 200:
        print(_error_message(response), file=err)
        return EXIT_FAILED
    body = response.json()
    if args.redrive:
        print(f"sent {body['redriven']} job(s) back to the generate queue", file=out)
    else:
        print(f"{body['count']} job(s) in the dead-letter queue", file=out)
    for job in body["jobs"]:
        where = f"{job.get('tenantId')}/{job.get('conversationId')}/{job.get('messageId')}"
        tries = f" after {job['receiveCount']} tries" if job.get("receiveCount") else ""
        print(f"  {where}{tries}: {job.get('textPreview') or job.get('problem') or ''}", file=out)
    return EXIT_OK


def _connection_options(parser: argparse.ArgumentParser, *, after_command: bool) -> argparse.ArgumentParser:
    """--admin-url, --admin-key and --timeout. After the command they have no defaults of their own
    (argparse.SUPPRESS), so one left out there keeps what was given before the command."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if after_command else value

    url_help = "admin API base URL (default: $KEFU_ADMIN_URL or .kefu/local.json)"
    parser.add_argument("--admin-url", default=default(None), help=url_help)
    key_help = "admin key (default: $KEFU_ADMIN_KEY or .kefu/local.json)"
    parser.add_argument("--admin-key", default=default(None), help=key_help)
    parser.add_argument("--timeout", type=float, default=default(300.0), help="seconds per request (default 300)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu", description="kefu operator tools (talk to the admin API)")
    _connection_options(parser, after_command=False)
    # The same options after the command too (`kefu search … --admin-key …`), not only before it.
    connection = _connection_options(argparse.ArgumentParser(add_help=False), after_command=True)
    commands = parser.add_subparsers(dest="command", required=True)
    add_command = functools.partial(commands.add_parser, parents=[connection])

    ingest_cmd = add_command("ingest", help="upload files into a tenant's knowledge base")
    ingest_cmd.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    ingest_cmd.add_argument("--tenant", required=True, help="tenant id (t_…)")
    ingest_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest_cmd.add_argument(
        "--wait", type=float, default=1800.0, help="seconds to wait for the files to be indexed (default 1800)"
    )
    ingest_cmd.set_defaults(run=ingest)

    search_cmd = add_command("search", help="what the bot retrieves for a question")
    search_cmd.add_argument("query")
    search_cmd.add_argument("--tenant", required=True, help="tenant id (t_…)")
    search_cmd.add_argument("-k", type=int, default=5, help="passages to show (default 5)")
    search_cmd.set_defaults(run=search)

    calibrate_cmd = add_command("calibrate", help='set the "no good answer" threshold')
    calibrate_cmd.add_argument("--tenant", required=True, help="tenant id (t_…)")
    calibrate_cmd.add_argument(
        "--target-decline",
        type=float,
        metavar="SHARE",
        help="share of off-topic questions the bot should decline, 0.5-0.99 (e.g. 0.8: declines 80%% of "
        "them and answers more reworded in-scope questions; 0.95: declines more, answers fewer). Kept for "
        "later uploads; default: the tenant's last choice, else 0.9. The report's trade-off line shows "
        "what other values would give",
    )
    calibrate_cmd.add_argument("--off-topic", help="file: questions to decline, one per line")
    calibrate_cmd.add_argument("--in-scope", help="file: questions to answer, one per line")
    calibrate_cmd.add_argument("--dry-run", action="store_true", help="measure only")
    calibrate_cmd.set_defaults(run=calibrate)

    documents_cmd = add_command("documents", help="list a tenant's documents (their ids, for delete)")
    documents_cmd.add_argument("--tenant", required=True, help="tenant id (t_…)")
    documents_cmd.set_defaults(run=documents)

    delete_cmd = add_command("delete", help="remove one document from a tenant's knowledge base")
    delete_cmd.add_argument("document_id", metavar="DOCUMENT_ID", help="as `kefu documents` lists it")
    delete_cmd.add_argument("--tenant", required=True, help="tenant id (t_…)")
    delete_cmd.set_defaults(run=delete)

    dead_cmd = add_command("dead-letters", help="jobs the generate function could not settle")
    dead_cmd.add_argument("--redrive", action="store_true", help="send them back to the generate queue")
    dead_cmd.add_argument("--limit", type=int, default=20, help="at most this many (1-100, default 20)")
    dead_cmd.set_defaults(run=dead_letters)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        local_json = Path(os.environ.get(LOCAL_JSON_VARIABLE) or LOCAL_JSON)
        target = resolve_target(args.admin_url, args.admin_key, dict(os.environ), local_json)
        code: int = args.run(args, target, out, err)
        out.flush()
    except UsageError as error:
        print(f"kefu: {error}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`kefu search … | head`): stop quietly, like any Unix filter.
        _silence_stdout(out)
        return EXIT_FAILED
    except Exception as error:  # a network failure etc.: one line, not a traceback
        import httpx

        if isinstance(error, httpx.HTTPError):
            print(f"kefu: cannot reach the admin API: {error}", file=err)
            return EXIT_FAILED
        raise
    return code


def _silence_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
