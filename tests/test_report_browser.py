"""The report and the interactive pages render in a real headless Chromium."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def explore_page(tiny_run, name: str) -> Iterator:
    """The tiny run's page results/explore/tiny-en/<name> in Chromium, its canvas drawn; yields
    (page, errors) as browser_page does."""
    work, _, _ = tiny_run
    with browser_page() as (page, errors):
        page.goto((work / "results" / "explore" / "tiny-en" / name).as_uri())
        page.wait_for_selector("canvas", timeout=20000)
        yield page, errors


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
    with explore_page(tiny_run, "vocab.html") as (page, errors):
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
    with explore_page(tiny_run, "sentences.html") as (page, errors):
        layers = page.locator("select").nth(2).locator("option").all_inner_texts()
        assert layers == ["0", "2"], layers
        page.locator("select").nth(2).select_option("0")
        page.wait_for_function("window.bertlensView && window.bertlensView.endsWith('L0')")
        page.screenshot(path=str(ARTIFACTS / "sentences_page.png"))
    assert not errors, errors
