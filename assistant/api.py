"""HTTP: /api/health and /api/ask (FastAPI), with the Gradio chat at / and the widget at /widget."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.answer.types import Citation
from assistant.chain import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, Pipeline, QuestionError, build_pipeline
from assistant.documents import KINDS
from assistant.settings import Settings
from assistant.text import clean_input

log = logging.getLogger("assistant.api")


def _as_text(value: Any) -> Any:
    # Lone surrogates and control characters are handled as text, not rejected.
    return clean_input(value) if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_as_text)]
Kind = Literal[KINDS]  # type: ignore[valid-type]


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: Text = Field(max_length=20000)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: Text = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
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


class Health(BaseModel):
    status: str
    documents: int | None = None
    chunks: int | None = None
    detail: str | None = None


class PipelineHolder:
    """Loads the pipeline in the background so /api/health can say 503 until it is ready."""

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.pipeline is not None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="pipeline-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self.pipeline = build_pipeline(self.settings)
        except Exception as exc:  # reported by /api/health, never as a traceback
            log.exception("could not load the pipeline")
            self.error = str(exc)

    def wait(self, timeout: float | None = None) -> Pipeline | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.pipeline


def _error(status: int, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content=body)


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        out.append({"field": where, "problem": str(err.get("msg", "invalid"))})
    return out


def create_app(settings: Settings, holder: PipelineHolder | None = None, with_ui: bool = True) -> FastAPI:
    holder = holder or PipelineHolder(settings)
    app = FastAPI(
        title="CELLTOP study assistant",
        description="Answers about the CELLTOP Phase 1 trial from the study material only, with verified citations.",
        version="0.1.0",
        docs_url=None,  # served below from local files: FastAPI's own /docs loads Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.holder = holder
    _offline_docs(app)

    @app.on_event("startup")
    def _start() -> None:
        holder.start()

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
        ancestors = " ".join(["'self'", *settings.frame_ancestors])
        response.headers.setdefault("Content-Security-Policy", f"frame-ancestors {ancestors}")
        if not settings.frame_ancestors:
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    if settings.frame_ancestors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.frame_ancestors),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.get("/api/health", response_model=Health, response_model_exclude_none=True, responses={503: {"model": Health}})
    def health() -> Any:
        pipeline = holder.pipeline
        if pipeline is None:
            status = "error" if holder.error else "loading"
            return JSONResponse(status_code=503, content={"status": status, "detail": holder.error})
        return {"status": "ok", **pipeline.stats()}

    @app.post(
        "/api/ask",
        response_model=AskResponse,
        responses={
            415: {"description": "not JSON"},
            422: {"description": "invalid request"},
            503: {"description": "index not loaded"},
        },
    )
    def ask(request: AskRequest) -> Any:
        pipeline = holder.pipeline
        if pipeline is None:
            return _error(503, "the assistant is still loading; try again shortly")
        try:
            answer = pipeline.ask(
                request.question,
                audience=request.audience,
                history=[{"role": t.role, "content": t.content} for t in request.history],
                kinds=request.kinds,
                audiences=request.document_audiences,
            )
        except QuestionError as exc:
            return _error(422, str(exc))
        return answer.as_json()

    if with_ui:
        from assistant.ui import mount_ui

        mount_ui(app, settings, holder)
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


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    ensure_index(settings)
    app = create_app(settings)
    host = host or settings.host
    port = port or settings.port
    print(f"Serving on http://{host}:{port}  (chat at /, widget at /widget, API at /api/ask)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
