"""HTTP: /api/health and /api/ask (FastAPI), with the Gradio chat at / and the widget at /widget."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant import generations
from assistant.access_log import SCOPE_KEY, AccessLog, quiet_gradio_tracebacks, setup_logging
from assistant.answer.types import Citation
from assistant.api_schema import ASK_BODY, ASK_RESPONSES, VISIBLE_PATTERN, ErrorBody, add_schemas
from assistant.chain import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, Pipeline, QuestionError, build_pipeline
from assistant.documents import KINDS
from assistant.embeddings import Embedder
from assistant.errors import user_facing
from assistant.gate import GatedPipeline, timing_fields
from assistant.http_limits import BUSY_RETRY_AFTER_S, AnswerSlots, Busy, HttpLimits, api_methods_of
from assistant.ingest import remove_old_indexes
from assistant.metrics import CONTENT_TYPE, Metrics, answer_outcome
from assistant.settings import Settings
from assistant.site import load_site
from assistant.store import StoreUnavailable, VectorStore
from assistant.text import clean_input
from assistant.web_security import PageScriptHashes, add_cors, content_security_policy
from assistant.workers import PooledPipeline, WorkerPool

log = logging.getLogger("assistant.api")


MAX_HISTORY_CHARS = 20000
UNAVAILABLE = "the assistant is temporarily unavailable (its vector store does not answer); try again shortly"


def _text(max_chars: int) -> Any:
    """Text checked for length as sent (so cleaning cannot hide its size), then cleaned:
    lone surrogates and control characters are handled as text, not rejected."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if len(value) > max_chars:
            raise PydanticCustomError(
                "string_too_long", "String should have at most {max_length} characters", {"max_length": max_chars}
            )
        return clean_input(value)

    return BeforeValidator(check)


Kind = Literal[KINDS]  # type: ignore[valid-type]


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: Annotated[str, _text(MAX_HISTORY_CHARS)] = Field(max_length=MAX_HISTORY_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: Annotated[str, _text(MAX_QUESTION_CHARS)] = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description="At least one visible character; control and format characters count as spaces.",
        json_schema_extra={"pattern": VISIBLE_PATTERN},
    )
    audience: Literal["patient", "clinician"] = "patient"
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    kinds: list[Kind] | None = Field(None, description="Only use documents of these kinds.", max_length=len(KINDS))
    document_audiences: list[Literal["patient", "clinician", "both"]] | None = Field(
        None, description="Only use documents written for these audiences.", max_length=3
    )


class AskResponse(BaseModel):
    answer: str
    citations: list[Citation]
    refused: bool
    safety: Literal["emergency", "crisis", "medical_advice"] | None
    dropped: list[dict[str, Any]]
    timings_ms: dict[str, float]
    answerer: str
    standalone_question: str | None
    uncovered: list[str] = Field(
        default_factory=list, description="Parts of the question the material does not answer (the rest is answered)."
    )


class Health(BaseModel):
    status: str = Field(
        description="ok; loading; degraded (the vector store does not answer: detail says why); error (see detail)."
    )
    documents: int | None = Field(None, description="Documents in the index the app answers from.")
    chunks: int | None = None
    units: int | None = Field(None, description="Quotable units (sentences, field lines) in that index.")
    generation: int | None = Field(None, description="Which committed index it is; it rises with each ingest.")
    workers: int | None = Field(
        None, description="Worker processes that compute answers (absent: answers in this one)."
    )
    workers_ready: int | None = Field(
        None, description="Workers that have loaded the index; while none has, this process answers."
    )
    detail: str | None = None


def _let_go(store: VectorStore, lease: generations.Lease) -> None:
    store.close()
    lease.release()


class PipelineHolder:
    """Loads the pipeline in the background so /api/health can say 503 until it is ready; while
    the Chroma server does not answer, tries again with a growing wait."""

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self._generation: generations.Generation | None = None
        self.error: str | None = None
        self._waiting_for_store: str | None = None  # why loading waits, while it waits for the store
        self._thread: threading.Thread | None = None
        self.wrap: Callable[[Pipeline], Pipeline] = lambda pipeline: pipeline  # create_app gates it
        self.pool: WorkerPool | None = None  # the worker processes that answer, when there are any

    def start(self) -> None:
        if self.pipeline is not None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="pipeline-loader", daemon=True)
        self._thread.start()

    @property
    def store_problem(self) -> str | None:
        """Why the vector store does not answer; None while it does (as far as the last call to it
        knows, here and in every worker process that answers)."""
        pipeline = self.pipeline
        if pipeline is None:
            return self._waiting_for_store
        return pipeline.store.availability.problem or (self.pool.store_problem() if self.pool is not None else None)

    def _load(self) -> None:
        wait = self.settings.chroma_retry_s
        while True:
            try:
                pipeline = self._build()
                break
            except StoreUnavailable as exc:  # the Chroma server is not up (yet): try again
                if self._waiting_for_store is None:
                    log.warning("cannot load the index yet: %s; trying again until it answers", exc)
                self._waiting_for_store = str(exc)
                time.sleep(wait)
                wait = min(self.settings.chroma_retry_max_s, wait * 2)
            except Exception as exc:  # reported by /api/health, never as a traceback
                message = user_facing(exc)
                if message is None:
                    log.exception("could not load the pipeline")
                else:
                    log.error("could not load the pipeline: %s", message)
                self.error = message or str(exc)
                return
        self.pipeline = self.wrap(pipeline)
        settle_heap()
        if self._waiting_for_store is not None:
            log.info("the vector store answers: index loaded")
            self._waiting_for_store = None
        threading.Thread(target=self._follow, name="index-follower", daemon=True).start()

    def _build(self, embedder: Embedder | None = None) -> Pipeline:
        """A pipeline on the index in use. It holds a lease on that index, so that a rebuild does
        not remove it while questions are answered from it; the lease ends with the pipeline."""
        while True:
            lease = generations.lease_current(self.settings)
            try:
                pipeline = build_pipeline(self.settings, embedder)
            except BaseException:
                lease.release()
                raise
            if generations.current(self.settings) == lease.generation:
                self._generation = lease.generation
                weakref.finalize(pipeline, _let_go, pipeline.store, lease)
                return pipeline
            _let_go(pipeline.store, lease)  # a rebuild switched while this loaded: load the new one

    def _follow(self) -> None:
        """Follow what `assistant ingest` commits while the app serves: a newer index is loaded
        beside the one in use and swapped in, so questions are answered from it within seconds."""
        while True:
            time.sleep(self.settings.reload_interval_s)
            try:
                self._follow_once()
            except Exception as exc:  # keep answering from the index already loaded
                log.warning("could not load the newer index: %s", exc)

    def _follow_once(self) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        # So /api/health follows a store that goes or comes back while nobody asks; a store that
        # does not answer logs that once itself, and any other failure shows in /api/ask.
        with contextlib.suppress(Exception):
            pipeline.store.check()
        snapshot = pipeline.snapshot
        if generations.current(self.settings) != self._generation:
            # `assistant ingest --rebuild` switched to a new index; questions in flight finish on the old one.
            self.pipeline = self.wrap(self._build(pipeline.embedder))
        else:
            pipeline.refresh()
        changed = self.pipeline is not pipeline or pipeline.snapshot is not snapshot
        del pipeline, snapshot
        stale = generations.stale(self.settings)
        if changed or stale:
            settle_heap()  # a replaced pipeline that nothing uses any more lets go of its index here
        if stale:
            remove_old_indexes(self.settings)

    def wait(self, timeout: float | None = None) -> Pipeline | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.pipeline


def settle_heap() -> None:
    """Collect the garbage there is, then exempt every object left from later full collections.

    A loaded index is about half a million Python objects, and a full collection walks them all:
    about 270 ms on this machine, during which the process answers nothing (a health check or a
    question that lands then waits that long). What is loaded stays until an index is replaced, so
    it is moved to the permanent generation (``gc.freeze``); at a replacement it is unfrozen first,
    so that the old index can be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _error(status: int, message: str, details: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content=body, headers=headers)


def parse_ask(body: bytes) -> AskRequest:
    """The /api/ask body, parsed and checked in a worker thread (cleaning long text is CPU work)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        problem = str(exc)[:120] if isinstance(exc, ValueError) else "nested too deeply"
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {problem}"}]
        ) from None
    try:
        return AskRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        out.append({"field": where, "problem": str(err.get("msg", "invalid"))})
    return out


def create_app(
    settings: Settings, holder: PipelineHolder | None = None, with_ui: bool = True, workers: int = 1
) -> FastAPI:
    """The app; with ``workers`` > 1, answers are computed in that many worker processes (assistant.workers)."""
    holder = holder or PipelineHolder(settings)
    site = load_site(settings.site_file)
    app = FastAPI(
        title=site.title,
        description=site.api_description,
        version="0.1.0",
        docs_url=None,  # served below from local files: FastAPI's own /docs loads Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.holder = holder
    _offline_docs(app)
    slots = AnswerSlots(settings.answers_in_flight, settings.answer_wait_s, settings.max_answers_waiting)
    metrics = Metrics(lambda: holder.pipeline, slots, lambda: holder.store_problem is None)
    pool = WorkerPool(settings, workers) if workers > 1 else None
    holder.pool = pool

    def wrap(pipeline: Pipeline) -> Pipeline:
        answering = PooledPipeline(pipeline, pool) if pool is not None else pipeline
        return cast(Pipeline, GatedPipeline(answering, slots, metrics, settings.log_questions))

    holder.wrap = wrap
    if holder.pipeline is not None and not isinstance(holder.pipeline, GatedPipeline):
        holder.pipeline = holder.wrap(holder.pipeline)
    app.state.metrics = metrics

    @app.on_event("startup")
    def _start() -> None:
        holder.start()
        if pool is not None:
            pool.start()

    @app.on_event("shutdown")
    def _stop() -> None:
        if pool is not None:
            pool.close()

    def index_fields(pipeline: Pipeline) -> dict[str, int]:
        """The index answers come from (the workers', once one is ready), and the workers' state."""
        if pool is None:
            return pipeline.stats()
        return {**(pool.stats() or pipeline.stats()), "workers": pool.count, "workers_ready": pool.ready_count()}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid request", _validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "internal error; the problem has been logged")

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.url.path == "/api/ask" and request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return _error(415, "send the question as JSON (Content-Type: application/json)")
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy(settings, request.url.path))
        if not settings.frame_ancestors:
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    add_cors(app, settings)

    @app.get("/api/health", response_model=Health, response_model_exclude_none=True, responses={503: {"model": Health}})
    async def health() -> Any:  # async, and no call to the store: never waits behind answers or a frozen store
        pipeline = holder.pipeline
        store_problem = holder.store_problem
        if pipeline is None:
            if holder.error:
                return JSONResponse(status_code=503, content={"status": "error", "detail": holder.error})
            if store_problem:
                detail = f"vector store down, loading waits for it: {store_problem}"
                return JSONResponse(status_code=503, content={"status": "degraded", "detail": detail})
            return JSONResponse(status_code=503, content={"status": "loading"})
        if store_problem:
            detail = f"vector store down: {store_problem}"
            content = {"status": "degraded", "detail": detail, **index_fields(pipeline)}
            return JSONResponse(status_code=503, content=content)
        return {"status": "ok", **index_fields(pipeline)}

    @app.post("/api/ask", response_model=AskResponse, responses=ASK_RESPONSES, openapi_extra=ASK_BODY)
    async def ask(http_request: Request) -> Any:
        # Parsing and answering run in worker threads: the event loop only moves bytes.
        request = await run_in_threadpool(parse_ask, await http_request.body())
        log_info = http_request.scope.get(SCOPE_KEY, {})
        retry = {"Retry-After": str(BUSY_RETRY_AFTER_S)}
        pipeline = holder.pipeline
        if pipeline is None:
            if holder.error:
                log_info["outcome"] = "error"
                return _error(503, "the assistant could not load its index; its operator has to fix that")
            if holder.store_problem:
                log_info["outcome"] = "unavailable"
                return _error(503, UNAVAILABLE, headers=retry)
            log_info["outcome"] = "loading"
            return _error(503, "the assistant is still loading; try again shortly", headers=retry)
        gate: Any = pipeline  # a GatedPipeline, unless a test set the pipeline after create_app
        if not isinstance(gate, GatedPipeline):
            gate = GatedPipeline(pipeline, slots, metrics, settings.log_questions)
        try:
            answer = await gate.ask_async(
                request.question,
                audience=request.audience,
                history=[{"role": t.role, "content": t.content} for t in request.history],
                kinds=request.kinds,
                audiences=request.document_audiences,
            )
        except Busy as exc:
            log_info["outcome"] = "busy"
            return _error(503, str(exc), headers=retry)
        except StoreUnavailable:  # logged once by the store when it went, not once per question
            log_info["outcome"] = "unavailable"
            return _error(503, UNAVAILABLE, headers=retry)
        except QuestionError as exc:
            return _error(422, str(exc))
        log_info.update(outcome=answer_outcome(answer), **timing_fields(answer))
        if settings.log_questions:
            log_info.update(question=request.question, answer=answer.text)
        return answer.as_json()

    if settings.metrics_enabled:

        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics() -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE)

    add_schemas(app, AskRequest, ErrorBody)
    api_methods = api_methods_of(app)
    app.add_middleware(PageScriptHashes, settings=settings)
    app.add_middleware(HttpLimits, settings=settings, api_methods=api_methods)
    app.add_middleware(AccessLog, metrics=metrics, api_paths=lambda: set(api_methods()))

    if with_ui:
        from assistant.ui import mount_ui

        mount_ui(app, settings, holder)
        quiet_gradio_tracebacks(verbose=settings.log_questions)
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files the app serves itself (the fastapi-offline package ships them)."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title}: HTTP API",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
        )


def ensure_index(settings: Settings) -> None:
    """Build the index from the corpus dir when there is none (first `make run`)."""
    from assistant.ingest import db_path

    if db_path(settings).exists():
        from assistant.store import ChunkDB

        db = ChunkDB(db_path(settings))
        try:
            if db.documents():
                return
        finally:
            db.close()
    from assistant.embeddings import make_embedder
    from assistant.ingest import ingest

    print(f"No index yet: building it from {settings.corpus_dir} ...", flush=True)
    report = ingest(settings, make_embedder(settings), log=lambda m: print(m, flush=True))
    print(f"Indexed {report.documents} documents, {report.chunks} chunks in {report.seconds:.1f} s", flush=True)


def use_serving_threads(settings: Settings) -> None:
    """Torch's threads per answer in a process that answers (the serving process and each worker)."""
    if settings.serve_torch_threads:
        import torch

        # Measured (docs/benchmarks.md): half the CPU per answer and 1.4-2x the answers per second.
        torch.set_num_threads(settings.serve_torch_threads)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    ensure_index(settings)
    use_serving_threads(settings)
    app = create_app(settings, workers=settings.worker_count)
    host = host or settings.host
    port = port or settings.port
    print(f"Serving on http://{host}:{port}  (chat at /, widget at /widget, API at /api/ask)", flush=True)
    setup_logging()
    # uvicorn stops gracefully on SIGTERM (answers in flight get `shutdown_grace_s`), then raises
    # the signal again, which would end the process by the signal; stopping when asked is a clean exit.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    # proxy_headers off: X-Forwarded-For is believed only from ASSISTANT_TRUSTED_PROXIES (http_limits).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        proxy_headers=False,
    )
