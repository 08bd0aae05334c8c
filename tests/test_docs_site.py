"""The documentation site, as built: the pages exist for every family, and a real browser
renders the home page, the catalog page and a family page with their plots.

The browser is Debian's Chromium (``.ci/run`` installs it when missing), headless. The site is
served from ``build/site/`` (what ``make docs`` wrote; ``make test`` builds it before this pass)
by a local HTTP server, next to a small harness page that loads each page in an iframe and
writes what it found (title, headings, every image with its loaded width) into its own DOM,
which ``chromium --dump-dom`` prints. If the built site is missing or older than its sources,
the test builds it first (``mkdocs build --strict``, about a minute).
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
#: what the site is built from: a newer file means build/site is stale
SOURCES = [
    ROOT / "mkdocs.yml",
    ROOT / "docs",
    ROOT / "src" / "losskit",
    ROOT / "CONTRIBUTING.md",
    ROOT / "benchmarks",
]
#: pages the browser must render, with the plots each must show
PAGES = {
    "index.html": ["plots/focal.png"],
    "catalog/index.html": ["plots/mse.png", "plots/huber.png", "plots/focal.png"],
    "families/imbalance/index.html": ["plots/focal.png", "plots/sigmoid_focal.png"],
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # nothing outside this machine: MathJax's CDN fails at once instead of timing out
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--virtual-time-budget=20000",
]


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                newest = max(newest, f.stat().st_mtime)
    return newest


@pytest.fixture(scope="module")
def site() -> Path:
    """``build/site``, rebuilt first if it is missing or stale. A lock keeps the test processes
    of one run (pytest-xdist) from building it twice at once."""
    SITE.parent.mkdir(exist_ok=True)
    with open(SITE.parent / ".docs-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = SITE / "index.html"
        if not index.is_file() or index.stat().st_mtime < _newest(SOURCES):
            mkdocs = Path(sys.executable).with_name("mkdocs")
            result = subprocess.run(
                [str(mkdocs), "build", "--strict", "--quiet"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
            )
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return SITE


@functools.cache
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Chromium is not installed: apt-get install chromium (.ci/run installs it when missing)"
    )


_HARNESS = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="/PAGE" width="1280" height="2000"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument;
  const images = [...doc.querySelectorAll("article img")].map((img) => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth,
  }));
  const h1 = doc.querySelector("article h1");
  document.getElementById("result").textContent = JSON.stringify({
    title: doc.title, h1: h1 ? h1.textContent : null, images: images,
    headings: doc.querySelectorAll("article h2, article h3").length,
    text: doc.querySelector("article") ? doc.querySelector("article").textContent.length : 0,
  });
});
</script></body></html>"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path.startswith("/__harness__/"):
            body = _HARNESS.replace("PAGE", self.path.removeprefix("/__harness__/")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _Result(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "pre" and ("id", "result") in attrs

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


def render(server: str, page: str, profile: Path) -> dict:
    """What headless Chromium found on ``page``, loaded from the local server."""
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            f"{server}/__harness__/{page}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    parser = _Result()
    parser.feed(result.stdout)
    assert parser.text and parser.text != "pending", (
        f"chromium did not render {page} (exit {result.returncode}): {result.stderr[-3000:]}"
    )
    return json.loads(parser.text)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_with_its_plots(page, site, server, tmp_path):
    found = render(server, page, tmp_path / "profile")
    assert found["h1"], f"{page}: no title heading"
    assert "losskit" in found["title"]
    assert found["text"] > 500, f"{page}: almost no text ({found['text']} characters)"
    base = (site / page).parent
    loaded = {}
    for image in found["images"]:
        target = (base / image["src"]).resolve()
        loaded[target.relative_to(site.resolve()).as_posix()] = image
    for plot in PAGES[page]:
        assert plot in loaded, f"{page}: no <img> of {plot}; images: {sorted(loaded)}"
        image = loaded[plot]
        assert image["complete"] and image["width"] > 0, f"{page}: {plot} did not load: {image}"
        data = (site / plot).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, f"{plot} is not a real PNG"


def test_catalog_page_lists_every_entry(site):
    import losskit

    html = (site / "catalog" / "index.html").read_text(encoding="utf-8")
    for name in losskit.catalog:
        spec = losskit.catalog[name]
        assert f'id="{name}"' in html, f"catalog page: no section for {name}"
        for param in spec.params:
            assert f"<code>{param.name}</code>" in html, f"catalog page: {name}.{param.name}"


def test_every_family_has_a_page_in_the_nav():
    from losskit.losses import FAMILIES

    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for family in FAMILIES:
        page = ROOT / "docs" / "families" / f"{family}.md"
        assert page.is_file(), f"family {family}: no docs/families/{family}.md"
        assert f"<!-- catalog: {family} -->" in page.read_text(encoding="utf-8"), (
            f"docs/families/{family}.md does not end with its generated entries"
        )
        assert re.search(rf"^\s*- families/{family}\.md\s*$", config, re.M), (
            f"mkdocs.yml: families/{family}.md is not in the nav"
        )


# ------------------------------------------------------------------------------- the README

#: the README is the front page: what losskit is, set-up, a tour, the features, links (issue 21)
README_MAX_LINES = 200
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$", re.M)


def _slug(title: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    import unicodedata

    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(markdown: str) -> set[str]:
    without_code = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return {_slug(match.group("title")) for match in _HEADING.finditer(without_code)}


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it under {README_MAX_LINES} and move the rest "
        "into docs/"
    )


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md"])
def test_links_resolve(document):
    """Relative links (to docs/*.md, so that they work on GitHub too) name files that exist,
    and their anchors name headings of those files."""
    source = ROOT / document
    for match in _LINK.finditer(source.read_text(encoding="utf-8")):
        target = match.group("target")
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        file = (source.parent / path).resolve()
        assert file.exists(), f"{document}: link to {target}: no such file"
        if anchor:
            assert file.suffix == ".md", f"{document}: anchor into a non-Markdown file: {target}"
            anchors = _anchors(file.read_text(encoding="utf-8"))
            assert anchor in anchors, f"{document}: {target}: no heading with that anchor"


def test_readme_setup_commands_are_the_makefile_s():
    """The two set-up commands the README gives exist, and `make run` runs what it says."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    for target in re.findall(r"^\$ make ([\w-]+)", readme, re.M):
        assert target in targets, f"README.md: make {target} is not a Makefile target"
    for command in ("run", "test"):
        assert re.search(rf"^\$ make {command}\b", readme, re.M), f"README.md: no make {command}"
    recipe = re.search(r"^run:.*\n\t\$\(BIN\)/(?P<command>.+)$", makefile, re.M)
    assert recipe, "Makefile: no run target with one command"
    assert f"`{recipe.group('command').strip()}`" in readme, (
        f"README.md does not give make run's command, {recipe.group('command')!r}"
    )
