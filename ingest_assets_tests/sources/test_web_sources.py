"""Web sources against a real website on 127.0.0.1: sitemap and URL-list listing, conditional
GET (304), robots.txt, per-host limits, bounded redirects and sizes, and the full pipeline:
first ingest, then a changed, a deleted and an added page, by `ingest run` and by the sensor."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from benchmarks.corpus import make_text_pdf
from ingest_assets.lib.hashing import shard_of
from ingest_assets.sources.base import SourceReadError
from ingest_assets.sources.registry import SourceRecord, open_source
from ingest_assets.sources.web import WebSource
from ingest_assets.testing.site_server import Site
from ingest_assets_tests.sensing import evaluate, requested_shards

NAV = "<nav><a href='/'>Home</a> <a href='/guide'>Guide</a> <a href='/faq'>FAQ</a></nav>"
FOOTER = "<footer>Copyright 2026 Example Docs. All rights reserved. Imprint.</footer>"


def page(title: str, *sections: tuple[str, str]) -> str:
    body = "".join(f"<h2>{heading}</h2><p>{text}</p>" for heading, text in sections)
    return (
        f"<html><head><title>{title} - Example Docs</title></head><body>{NAV}"
        f"<main><h1>{title}</h1>{body}</main>{FOOTER}</body></html>"
    )


PAGES = {
    "/install": page(
        "Installing the widget",
        (
            "On Linux",
            "Run the installer with root rights; it puts the binary in /usr/local/bin. " * 4,
        ),
        ("On macOS", "Drag the application into the Applications folder, confirm the launch. " * 4),
    ),
    "/billing": page(
        "Billing and invoices",
        ("Invoices", "Invoices are sent on the first day of every month to the account owner."),
        ("Refunds", "Refunds are granted within thirty days of purchase, no questions asked."),
    ),
    "/tuning": page(
        "Tuning the cache",
        ("Memory", "Give the cache a quarter of the memory of the machine for best results."),
    ),
    "/private/secrets": page("Internal notes", ("Secret", "This page is disallowed by robots.")),
}


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    for path, html in PAGES.items():
        site.put(path, html)
    with site.serving():
        yield site


def sitemap(site: Site, **options: object) -> SourceRecord:
    return SourceRecord("site", "sitemap", site.url("/sitemap.xml"), {"recheck_s": 0, **options})


def documents(db, source: str = "site") -> dict[str, tuple[str | None, str | None, bool]]:
    """doc_id -> (title, body, deleted) of the source's documents."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT doc_id, title, body, deleted_at IS NOT NULL FROM documents WHERE source = %s",
            (source,),
        ).fetchall()
    return {doc_id: (title, body, deleted) for doc_id, title, body, deleted in rows}


def test_sitemap_first_ingest_keeps_main_content_and_honours_robots(ingest, db, site):
    summary = ingest(sitemap(site))

    assert summary.success, summary.error
    docs = documents(db)
    assert set(docs) == {site.url(p) for p in ("/install", "/billing", "/tuning")}
    title, body, _ = docs[site.url("/install")]
    assert title == "Installing the widget"
    assert "## On Linux" in body and "/usr/local/bin" in body
    assert "Copyright" not in body and "FAQ" not in body  # navigation and footer dropped
    assert site.fetched("/private/secrets") == []  # robots.txt: never requested
    with db.connect() as conn:
        contexts = [r[0] for r in conn.execute("SELECT context FROM chunks WHERE context <> ''")]
    # Long enough for several chunks: each carries the page title and its section heading.
    assert any("Installing the widget" in c and "On macOS" in c for c in contexts), contexts


def test_unchanged_pages_cost_a_304_each_and_changes_are_picked_up(ingest, db, site):
    ingest(sitemap(site))
    site.clear_log()

    quiet = ingest(sitemap(site))

    assert quiet.totals["documents_unchanged"] == 3
    requests = [r for p in ("/install", "/billing", "/tuning") for r in site.fetched(p)]
    assert [(r.status, r.conditional) for r in requests] == [(304, True)] * 3

    site.put("/billing", page("Billing and invoices", ("Refunds", "Refunds take sixty days.")))
    site.delete("/tuning")
    site.put("/upgrade", page("Upgrading", ("Steps", "Stop the service, then run the upgrader.")))

    changed = ingest(sitemap(site))

    t = changed.totals
    assert (t["documents_new"], t["documents_changed"], t["documents_deleted"]) == (1, 1, 1)
    assert t["documents_unchanged"] == 1
    docs = documents(db)
    assert "sixty days" in docs[site.url("/billing")][1]
    assert docs[site.url("/tuning")][2] is True  # tombstoned
    assert "upgrader" in docs[site.url("/upgrade")][1]
    with db.connect() as conn:
        left = conn.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.doc_id = %s",
            (site.url("/tuning"),),
        ).fetchone()
    assert left == (0,)


def test_a_sitemap_over_max_pages_deletes_nothing_and_says_so(ingest, db, site):
    ingest(sitemap(site))
    assert sum(not deleted for *_, deleted in documents(db).values()) == 3

    summary = ingest(sitemap(site, max_pages=2))  # the third listed page is past the limit

    assert summary.success, summary.error
    assert summary.totals["documents_deleted"] == 0
    assert sum(not deleted for *_, deleted in documents(db).values()) == 3
    (reason,) = [r for r in summary.skipped if "more than" in r]
    assert reason == "sitemap lists more than 2 pages"


def test_robots_disallowed_pages_are_counted_as_skipped(ingest, site):
    summary = ingest(sitemap(site))
    assert summary.skipped["disallowed by robots.txt"] == {
        "count": 1,
        "examples": [site.url("/private/secrets")],
    }


def test_a_page_gone_from_the_server_but_still_in_the_sitemap_is_deleted(ingest, db, site):
    ingest(sitemap(site))
    site.pages["/tuning"].status = 410

    summary = ingest(sitemap(site))

    assert summary.success, summary.error
    assert summary.totals["documents_deleted"] == 1
    assert documents(db)[site.url("/tuning")][2] is True


def test_change_sensor_sees_changed_deleted_and_added_pages(ingest, settings, instance, site):
    record = sitemap(site)
    ingest(record)
    shards = settings.shards

    quiet = evaluate(settings, instance, "changes_sensor")
    assert quiet.run_requests == []

    site.put("/billing", page("Billing and invoices", ("Refunds", "Refunds take sixty days.")))
    changed = evaluate(settings, instance, "changes_sensor", quiet.cursor)
    assert requested_shards(changed) == {shard_of(site.url("/billing"), shards)}
    ingest(record)

    site.delete("/tuning")
    site.put("/upgrade", page("Upgrading", ("Steps", "Stop the service, then run the upgrader.")))
    moved = evaluate(settings, instance, "changes_sensor", changed.cursor)
    assert requested_shards(moved) == {
        shard_of(site.url("/tuning"), shards),
        shard_of(site.url("/upgrade"), shards),
    }
    ingest(record)
    assert evaluate(settings, instance, "changes_sensor", moved.cursor).run_requests == []


def test_between_rechecks_the_sensor_sees_only_added_and_removed_pages(
    ingest, settings, instance, site
):
    record = sitemap(site, recheck_s=3600)
    ingest(record)
    first = evaluate(settings, instance, "changes_sensor")  # rechecks: first look
    site.clear_log()

    site.put("/billing", page("Billing", ("Refunds", "Refunds take sixty days.")))
    edited = evaluate(settings, instance, "changes_sensor", first.cursor)
    assert edited.run_requests == []  # not asked again within recheck_s
    assert site.fetched("/billing") == []

    site.put("/upgrade", page("Upgrading", ("Steps", "Run the upgrader.")))
    added = evaluate(settings, instance, "changes_sensor", edited.cursor)
    assert requested_shards(added) == {shard_of(site.url("/upgrade"), settings.shards)}


def test_url_list_source_with_bad_urls_redirects_sizes_and_types(ingest, db, site, tmp_path):
    site.put("/big", "<html><body>" + "x" * 40_000 + "</body></html>")
    site.put("/manual.pdf", make_text_pdf(["Widget manual: press the red button."]),
             content_type="application/pdf")  # fmt: skip
    site.put("/image", b"\x89PNG....", content_type="image/png")
    site.put("/plain", "Plain words about the widget and its red button.",
             content_type="text/plain", validators=False)  # fmt: skip
    for hop in range(4):
        site.redirects[f"/hop{hop}"] = f"/hop{hop + 1}"
    site.redirects["/moved"] = "/install"
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# pages to ingest\n"
        + "\n".join(
            [
                site.url("/install"),
                site.url("/install#section"),  # the same page
                "ftp://example.com/file.txt",
                site.url("/big"),
                site.url("/manual.pdf"),
                site.url("/image"),
                site.url("/plain"),
                site.url("/hop0"),
                site.url("/moved"),
                site.url("/missing"),
            ]
        )
    )
    record = SourceRecord("links", "urls", str(urls), {"max_bytes": 32_768, "max_redirects": 2})

    summary = ingest(record)

    docs = documents(db, "links")
    assert "red button" in docs[site.url("/manual.pdf")][1]
    assert "red button" in docs[site.url("/plain")][1]
    assert "/usr/local/bin" in docs[site.url("/moved")][1]  # redirect followed
    assert site.url("/missing") not in docs  # 404 at first sight: nothing to keep
    assert not any(doc_id.startswith("ftp:") for doc_id in docs)
    reasons = dict(summary.quarantined)
    assert "larger than" in reasons[site.url("/big")]
    assert "more than 2 redirects" in reasons[site.url("/hop0")]
    assert "unsupported content type 'image/png'" in reasons[site.url("/image")]
    assert summary.success


def test_per_host_concurrency_and_delay_are_respected(site):
    for i in range(8):
        site.put(f"/p{i}", page(f"Page {i}", ("Body", f"text of page {i}")))
    site.latency_s = 0.15
    record = SourceRecord("site", "sitemap", site.url("/sitemap.xml"),
                          {"per_host_concurrency": 2, "delay_s": 0.05})  # fmt: skip
    source = open_source(record)
    assert isinstance(source, WebSource)
    refs = [r for r in source.list_documents() if "/p" in r.doc_id]
    site.clear_log()
    try:
        results = list(source.fetch_all((ref, None) for ref in refs))
    finally:
        source.close()

    assert len(results) == 8 and all(not isinstance(r, Exception) for _, r in results)
    assert [ref.doc_id for ref, _ in results] == [r.doc_id for r in refs]  # order kept
    assert site.max_in_flight == 2
    starts = sorted(r.started for r in site.requests)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.04


def test_an_unreachable_robots_txt_fails_the_run_without_deleting_anything(ingest, db, site):
    ingest(sitemap(site))
    site.failing["/robots.txt"] = 503
    summary = ingest(sitemap(site))

    assert not summary.success
    assert "robots.txt: HTTP 503" in (summary.error or "")
    assert not any(deleted for _, _, deleted in documents(db).values())


def test_invalid_web_options_name_the_source():
    with pytest.raises(ValueError, match="source 'site': invalid options"):
        open_source(SourceRecord("site", "sitemap", "http://x/sitemap.xml", {"delay": 1}))


def test_sitemap_with_entities_is_refused(site):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;">]><urlset><url><loc>&lol2;</loc></url></urlset>'
    )
    site.sitemap = lambda: bomb  # type: ignore[method-assign]
    source = open_source(sitemap(site))
    try:
        with pytest.raises(SourceReadError, match="not XML"):
            list(source.list_documents())
    finally:
        source.close()


def test_url_list_edits_are_picked_up_by_run_and_by_the_sensor(
    ingest, db, settings, instance, site, tmp_path
):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{site.url('/install')}\n{site.url('/billing')}\n{site.url('/tuning')}\n")
    record = SourceRecord("links", "urls", str(urls), {"recheck_s": 0})
    assert ingest(record).totals["documents_new"] == 3
    quiet = evaluate(settings, instance, "changes_sensor")
    assert quiet.run_requests == []

    urls.write_text(f"{site.url('/install')}\n{site.url('/billing')}\n{site.url('/upgrade')}\n")
    site.put("/upgrade", page("Upgrading", ("Steps", "Stop the service, run the upgrader.")))
    site.put("/billing", page("Billing and invoices", ("Refunds", "Refunds take sixty days.")))
    sensed = evaluate(settings, instance, "changes_sensor", quiet.cursor)
    assert requested_shards(sensed) == {
        shard_of(site.url(p), settings.shards) for p in ("/tuning", "/upgrade", "/billing")
    }

    t = ingest(record).totals
    assert (t["documents_new"], t["documents_changed"], t["documents_deleted"]) == (1, 1, 1)
    docs = documents(db, "links")
    assert docs[site.url("/tuning")][2] is True and "sixty days" in docs[site.url("/billing")][1]
