"""The Content-Security-Policy and CORS a public site needs, checked on a real server and in
headless Chromium (the chat must still work under the policy, with no violation reported)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.test_api import ARTIFACTS, server, start_server, stop

pytestmark = pytest.mark.slow
__all__ = ["server"]

FRAMER = "https://www.clinic.example"
STRANGER = "http://localhost:9999"


@pytest.fixture(scope="module")
def site(built_index) -> Iterator[str]:  # type: ignore[no-untyped-def]
    proc, base = start_server(built_index, {"ASSISTANT_FRAME_ANCESTORS": f'["{FRAMER}"]'})
    yield base
    stop(proc)


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.mark.parametrize("path", ["/", "/widget/"])
def test_pages_allow_only_their_own_inline_scripts(site: str, path: str) -> None:
    response = httpx.get(site + path, timeout=30)
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"] and policy["frame-ancestors"] == ["'self'", FRAMER]
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts and scripts[:2] == ["'self'", "'unsafe-eval'"]
    inline = [
        body
        for attributes, body in re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, re.S)
        if "src=" not in attributes
    ]
    assert inline, "Gradio's page has inline scripts"
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in scripts


def test_api_responses_allow_nothing(site: str) -> None:
    policy = httpx.get(site + "/api/health", timeout=30).headers["content-security-policy"]
    assert directives(policy) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


CORS_PATHS = ["/config", "/widget/config", "/gradio_api/info", "/api/health"]


def assert_no_cors_for_strangers(base: str, path: str) -> None:
    stranger = httpx.get(base + path, headers={"origin": STRANGER}, timeout=30)
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-credentials" not in stranger.headers
    preflight = httpx.options(
        base + "/gradio_api/queue/join",
        headers={"origin": STRANGER, "access-control-request-method": "POST"},
        timeout=30,
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-credentials" not in preflight.headers


@pytest.mark.parametrize("path", CORS_PATHS)
def test_cors_does_not_answer_other_localhost_origins(server: str, path: str) -> None:
    """With no framing origins set, Gradio used to answer any localhost origin, with credentials."""
    assert_no_cors_for_strangers(server, path)


@pytest.mark.parametrize("path", CORS_PATHS)
def test_cors_answers_the_framing_origin_only_and_never_with_credentials(site: str, path: str) -> None:
    assert_no_cors_for_strangers(site, path)
    framer = httpx.get(site + path, headers={"origin": FRAMER}, timeout=30)
    assert framer.headers["access-control-allow-origin"] == FRAMER
    assert "access-control-allow-credentials" not in framer.headers


def test_the_chat_works_under_the_policy_and_injected_markup_runs_nothing(site: str, browser) -> None:  # type: ignore[no-untyped-def]
    for path in ("/", "/widget/"):
        page = browser.new_page(viewport={"width": 1100, "height": 850})
        console: list[str] = []
        elsewhere: list[str] = []
        page.on("console", lambda m: console.append(m.text))  # noqa: B023
        page.on(
            "request",
            lambda r: None if r.url.startswith((site, "data:", "blob:")) else elsewhere.append(r.url),  # noqa: B023
        )
        page.goto(site + path, wait_until="load")
        box = page.get_by_label("Your question")
        box.wait_for(timeout=30000)
        box.fill("What side effects were seen?")
        box.press("Enter")
        page.locator("#chat a[href^='#src-']").first.wait_for(timeout=30000)
        assert "headache" in page.locator("#chat").inner_text().lower()
        violations = [m for m in console if "Content Security Policy" in m]
        assert not violations, violations[:3]
        assert not elsewhere, elsewhere[:3]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"csp{path.strip('/').replace('/', '-') or '-chat'}.png"))

        # Markup that got into the page cannot run script: its inline handler is blocked.
        page.evaluate(
            """() => {
                const img = document.createElement('img');
                img.addEventListener('error', () => { window.__failed = true; });
                img.setAttribute('onerror', 'window.__ran = true');
                img.src = '/no-such-image.png';
                document.body.appendChild(img);
            }"""
        )
        page.wait_for_function("window.__failed === true", timeout=10000)
        assert page.evaluate("window.__ran") is None
        page.close()
