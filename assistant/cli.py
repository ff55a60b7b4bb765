"""The `assistant` command: ingest | ask | serve | eval | calibrate | bench."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from assistant.offline import go_offline


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index documents (incremental)")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the corpus dir)")
    p.add_argument(
        "--rebuild", action="store_true", help="embed everything again into a new index, used once it is complete"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on the last line")
    p.add_argument(
        "--allow-skipped", action="store_true", help="exit 0 even when some files were skipped (default: exit 3)"
    )

    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question")
    p.add_argument("--audience", choices=["patient", "clinician"], default="patient")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")

    p = sub.add_parser("serve", help="serve the chat UI, widget and HTTP API")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)

    p = sub.add_parser("eval", help="run the question sets (tests/eval) and print quality figures")
    p.add_argument("--corpus", action="append", help="a folder of tests/eval (default: all)")
    p.add_argument("--split", choices=["dev", "test", "test2", "test3", "test4", "test5", "test6", "test7", "test8", "test9", "test10", "all"], default="dev",
                   help="dev: tuned on; test to test10: held out, each run once before it was reported")
    p.add_argument("--claims", action="store_true", help="run the claim suites through the verifier instead")
    p.add_argument("--failures", action="store_true", help="list the failed dev questions")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("calibrate", help="fit the decision model and the verifier's threshold on the dev splits")
    p.add_argument("--verifier-only", action="store_true", help="fit only the verifier's threshold")
    p.add_argument("--safety-only", action="store_true",
                   help="fit only the thresholds of the second triage check (safety-examples.yaml)")

    p = sub.add_parser("bench", help="measure speed and memory")
    p.add_argument("what", choices=["ingest", "ask", "load"])
    p.add_argument("--chunks", type=int, default=2000, help="synthetic chunks for `bench ingest`")
    p.add_argument("--url", help="`bench load`: measure the server at http://127.0.0.1:PORT instead of starting one")
    p.add_argument("--clients", type=_levels, default=(10, 30, 50),
                   help="`bench load`: concurrent clients per level, comma-separated (default 10,30,50)")
    p.add_argument("--seconds", type=float, default=20.0, help="`bench load`: how long each level runs (default 20)")
    p.add_argument("--requests", type=int, default=None,
                   help="`bench load`: at most this many requests per level (default: as many as the time allows)")
    p.add_argument("--timeout", type=float, default=60.0, help="`bench load`: one request's timeout in s (default 60)")
    p.add_argument("--health-interval", type=float, default=0.1,
                   help="`bench load`: seconds between two /api/health polls (default 0.1)")
    p.add_argument("--questions", type=Path, default=None,
                   help="`bench load`: a YAML list of questions to ask in turn (tests/eval's format will do;"
                        " default: the package's ten)")
    p.add_argument("--json", action="store_true")
    return parser


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of client counts: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("client counts must be at least 1")
    return levels


def main(argv: list[str] | None = None) -> int:
    go_offline()
    args = _parser().parse_args(argv)
    from assistant.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve" and settings.serve_torch_threads:
        # Before numpy and torch are imported: their OpenMP and BLAS pools read these once. With many
        # answers at once on few cores, one thread each halves the CPU per answer (docs/benchmarks.md).
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, str(settings.serve_torch_threads))
    handler = {
        "ingest": _ingest,
        "ask": _ask,
        "serve": _serve,
        "eval": _eval,
        "calibrate": _calibrate,
        "bench": _bench,
    }[args.command]
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from assistant.errors import user_facing

        message = user_facing(exc)
        if message is None:
            raise
        print(f"assistant: {message}", file=sys.stderr)
        return 1


def _ingest(settings, args) -> int:
    from assistant.embeddings import make_embedder
    from assistant.ingest import ingest

    embedder = make_embedder(settings)
    report = ingest(
        settings,
        embedder,
        args.paths or None,
        rebuild=args.rebuild,
        log=None if args.json else (lambda m: print(m, file=sys.stderr)),
    )
    for item in report.skipped:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(
            f"{report.documents} documents, {report.chunks} chunks: {report.added} added, {report.updated} updated,"
            f" {report.removed} removed, {report.unchanged} unchanged, {len(report.skipped)} skipped"
            f" ({report.seconds:.1f} s)"
        )
    return 3 if report.skipped and not args.allow_skipped else 0


def _ask(settings, args) -> int:
    from assistant.chain import build_pipeline

    pipeline = build_pipeline(settings)
    answer = pipeline.ask(args.question, audience=args.audience)
    if args.json:
        print(json.dumps(answer.as_json(), ensure_ascii=False))
    else:
        print(answer.render_text())
    return 0


def _serve(settings, args) -> int:
    from assistant.api import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def _eval(settings, args) -> int:
    from assistant.evaluate import SPLITS

    splits = list(SPLITS) if args.split == "all" else [args.split]
    if args.claims:
        from assistant.evaluate import claims_main

        return claims_main(settings, args.corpus, splits, args.json)
    from assistant.evaluate import main as eval_main

    return eval_main(settings, args.corpus, splits, args.json, args.failures)


def _calibrate(settings, args) -> int:
    from assistant.calibrate import main as calibrate_main

    return calibrate_main(settings, args.verifier_only, args.safety_only)


def _bench(settings, args) -> int:
    from assistant.bench import main as bench_main

    load = {
        "url": args.url,
        "levels": args.clients,
        "seconds": args.seconds,
        "max_requests": args.requests,
        "timeout": args.timeout,
        "health_interval": args.health_interval,
        "questions": args.questions,
    }
    return bench_main(settings, args.what, args.chunks, args.json, load)
