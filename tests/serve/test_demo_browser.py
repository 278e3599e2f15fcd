"""The demo page in a real headless Chromium over a real ``onefeed serve`` process: pick a user,
see their history and feed (real item ids, as POST /recommend gives them), search, see the
service's errors on the page, click a result (the POST /feedback body is intercepted: the
feedback log is not this page's business), and no data is ever parsed as HTML."""

import shutil
import time

import httpx
import pytest

from onefeed.serve.loadgen import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"chromium not found ({CHROMIUM}): apt-get install -y chromium (see .ci/run)",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

EVIL = '<img id="injected" src="x" onerror="document.body.dataset.owned=1">'


@pytest.fixture(scope="module")
def joint_server(runs, tmp_path_factory):
    cat = tmp_path_factory.mktemp("demo") / "catalogue.jsonl"
    with Server(runs["joint"], ["beam=6", "suggest_beam=4", f"catalogue={cat}"]) as s:
        r = httpx.post(s.url + "/items", json={"item": "evil", "text": "Title: red cream 9",
                                               "title": EVIL}, timeout=120)
        assert r.status_code == 201, r.text
        yield s


@pytest.fixture(scope="module")
def rec_server(runs, tmp_path_factory):
    cat = tmp_path_factory.mktemp("demo-rec") / "catalogue.jsonl"
    with Server(runs["rec"], ["beam=6", f"catalogue={cat}"]) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], errors  # no uncaught exception in demo.js


def ids(page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} .item-id").all_text_contents()


def open_user(page, url: str, user: str, k: int) -> None:
    page.goto(url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.fill("#k-input", str(k))
    page.select_option("#user-select", user)


def test_pick_a_user_feed_history_search(page, joint_server):
    url = joint_server.url
    n = httpx.get(url + "/health").json()["n_items"]
    assert page.goto(url + "/").status == 200
    expect(page.locator("#user-select option")).to_have_count(1 + 8)  # placeholder + 8 users
    open_user(page, url, "u0", n)
    want = [i["item"] for i in httpx.post(url + "/recommend", json={
        "user": "u0", "k": n}).json()["items"]]
    expect(page.locator("#feed-list li")).to_have_count(n)
    assert ids(page, "feed-list") == want and "evil" in want
    history = httpx.get(url + "/users/u0/history").json()["events"]
    expect(page.locator("#history-list li")).to_have_count(len(history))
    assert ids(page, "history-list") == [e["item"] for e in history if e["item"] is not None]
    expect(page.locator("#history-count")).to_have_text("(11 events)")
    expect(page.locator("#suggest-list li").first).to_be_visible()

    # the evil title is text: shown literally, no element made from it, its handler never ran
    assert EVIL in page.locator("#feed-list").inner_text()
    assert page.locator("#injected").count() == 0
    assert page.evaluate("document.body.dataset.owned") is None

    page.fill("#search-input", "red lipstick")
    page.click("#search-form button")
    found = [i["item"] for i in httpx.post(url + "/search", json={
        "query": "red lipstick", "k": n, "user": "u0"}).json()["items"]]
    expect(page.locator("#search-list li")).to_have_count(len(found))
    assert ids(page, "search-list") == found


def test_bad_input_shows_the_service_error(page, joint_server):
    open_user(page, joint_server.url, "u1", 5)
    expect(page.locator("#feed-list li")).to_have_count(5)
    page.fill("#search-input", "   ")
    page.click("#search-form button")
    expect(page.locator("#search-error")).to_have_text("422: query: empty (only white space) "
                                                       "(field: query)")
    expect(page.locator("#search-list li")).to_have_count(0)
    page.fill("#k-input", "5000")  # over the service's max_k: the feed says so
    page.select_option("#user-select", "u2")
    expect(page.locator("#feed-error")).to_contain_text("422: k:")
    expect(page.locator("#feed-error")).to_contain_text("(field: k)")
    page.fill("#search-input", "red")
    page.fill("#k-input", "3")
    page.click("#search-form button")  # a good search clears the error
    expect(page.locator("#search-list li")).to_have_count(3)
    expect(page.locator("#search-error")).to_be_hidden()


def test_clicking_a_result_posts_a_click_event(page, joint_server):
    posted: list[dict] = []

    def fake_log(route):
        posted.append(route.request.post_data_json)
        route.fulfill(status=200, json={"ids": [41], "accepted": 1})

    page.route("**/feedback", fake_log)
    open_user(page, joint_server.url, "u3", 4)
    expect(page.locator("#feed-list li")).to_have_count(4)
    second = ids(page, "feed-list")[1]
    before = time.time()
    page.locator("#feed-list button.result").nth(1).click()
    expect(page.locator("#feedback-status")).to_have_text(
        f"logged a click on {second} (log id 41)")
    assert len(posted) == 1
    (event,) = posted[0]["events"]
    assert set(event) == {"user", "kind", "item", "position", "timestamp", "request_id"}
    assert (event["user"], event["kind"], event["item"], event["position"]) == \
        ("u3", "click", second, 1)
    assert before - 5 <= event["timestamp"] <= time.time() + 5
    assert len(event["request_id"]) == 32  # the /recommend response's id
    expect(page.locator("#suggest-note")).to_have_text(f"(after {second})")


def test_rec_only_run_shows_why_there_are_no_suggestions(page, rec_server):
    open_user(page, rec_server.url, "u0", 3)
    expect(page.locator("#feed-list li")).to_have_count(3)
    expect(page.locator("#suggest-error")).to_contain_text("400: suggest: this run is "
                                                           "recommendation-only")
    page.fill("#search-input", "red")
    page.click("#search-form button")
    expect(page.locator("#search-error")).to_contain_text("recommendation-only")
