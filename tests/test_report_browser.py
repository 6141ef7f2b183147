"""The report and the interactive pages render in a real headless Chromium."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.helpers.browser import browser_page
from tests.helpers.runner import snakemake

pytestmark = [pytest.mark.browser, pytest.mark.workflow]
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"


@pytest.fixture(scope="module")
def report_dir(tiny_run):
    work, cfg, _ = tiny_run
    zpath = work / "report-browser.zip"
    snakemake(work, "--configfile", str(cfg), "--report", str(zpath))
    out = work / "report-unzipped"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(out)
    return next(out.rglob("report.html")).parent


def open_page(page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_selector("canvas", timeout=20000)


def test_report_opens_and_lists_every_chapter(report_dir):
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page() as (page, errors):
        page.goto((report_dir / "report.html").as_uri())
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        text = page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    for chapter in ("Corpus", "Tokens", "Embeddings"):
        assert chapter in text, text[:2000]
    assert "System Message" not in text  # RST in captions and workflow.rst is valid
    assert not errors, errors


def test_vocab_page_renders_and_search_highlights(tiny_run):
    """The pipeline's token map (results/explore/, the one interactive page per projection)."""
    work, _, _ = tiny_run
    page_path = work / "results" / "explore" / "tiny-en" / "vocab.html"
    with browser_page() as (page, errors):
        open_page(page, page_path)
        assert page.locator("canvas").count() >= 1
        page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0")
        labels = page.evaluate("Bokeh.documents[0].get_model_by_name('labels0').data.text.length")
        box = page.locator("input[type=text]").first
        box.fill("the")
        box.press("Enter")
        page.wait_for_timeout(500)
        hits = page.evaluate("window.bertlensLastSearch && window.bertlensLastSearch.hits")
        page.screenshot(path=str(ARTIFACTS / "vocab_page.png"))
    assert labels >= 5  # token labels drawn on the map
    assert hits and hits >= 1
    assert not errors, errors


def test_sentence_page_switches_views(tiny_run):
    work, _, _ = tiny_run
    page_path = work / "results" / "explore" / "tiny-en" / "sentences.html"
    with browser_page() as (page, errors):
        open_page(page, page_path)
        layers = page.locator("select").nth(2).locator("option").all_inner_texts()
        assert layers == ["0", "2"], layers
        page.locator("select").nth(2).select_option("0")
        page.wait_for_function("window.bertlensView && window.bertlensView.endsWith('L0')")
        page.screenshot(path=str(ARTIFACTS / "sentences_page.png"))
    assert not errors, errors
