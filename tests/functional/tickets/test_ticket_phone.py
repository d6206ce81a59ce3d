"""The phone page in Debian's headless chromium: a mailed link approves or rejects once, as its approver.

Real parts end to end: the notice goes through the notify outbox and the
delivery worker to a local SMTP server; the page is served by the engine's
cheroot server; chromium (driven by selenium) opens the mailed link and
presses the buttons.  Skipped, with the reason, where chromium or its driver
is not installed (``scripts/dev test`` installs them on Debian).
"""

import re
import shutil
import time

import pytest
import requests

from saltops import config
from saltops.alarms.http_server import BoundedServer
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.notify import registry
from saltops.notify.worker import Deliverer, RetryPolicy
from saltops.org import people
from saltops.store import Store
from saltops.tickets import notices, phone, settings, templates
from saltops.tickets.workflow import Workflow
from tests.support import tickets_kit
from tests.support.alarm_receivers import SmtpReceiver
from tests.support.hosts import host_record

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM),
                                reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium "
                                       "chromium-driver; scripts/dev test installs them)")
ORG = tickets_kit.ORG.replace("dan: {department: dev}", "dan: {department: dev, email: dan@example.com}")
TITLE = "<script>document.title='owned'</script> swap <b>disk</b>"
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/approve\?t=[0-9a-f]{32}\.\d+\.[A-Za-z0-9_-]{43})")


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store with people, a template and hosts; mail delivery; the page on a free port."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('phone')}/saltops.db")
    store.migrate()
    repo.write(store, "tester", [host_record("web1.example.com")], rules=Rules.from_config(config.load({})),
               mode="upsert")
    people.load(store, "tester", ORG, time.time())
    templates.save(store, "tester", tickets_kit.MAINT, time.time())
    smtp = SmtpReceiver().start()
    channels = {"mail": {"type": "smtp", "host": "127.0.0.1", "port": smtp.port, "from": "saltops@example.com",
                         "to": ["ops@example.com"]}}
    clock = Clock()
    executor = tickets_kit.Executor()
    flow = Workflow(store, executor=executor, clock=clock)
    app = phone.App(flow, b"s" * 32, max_body=4096)
    server = BoundedServer(("127.0.0.1", 0), app, threads=4, read_timeout=5, request_timeout=10, max_connections=16,
                           max_body=4096, too_large_message="too large", name="saltops-tickets").start()
    conf = settings.load({"tickets": {"notify": {"channels": ["mail"], "base_url": f"http://127.0.0.1:{server.port}",
                                                 "link_ttl": "1h"}}})
    notifier = notices.Notifier(store, conf["notify"], channels, b"s" * 32, clock)
    app.after_write = notifier.announce
    deliverer = Deliverer(store, registry.build(channels), RetryPolicy(backoff=0.2), workers=1, poll_interval=0.1)
    deliverer.start()
    yield {"store": store, "flow": flow, "notifier": notifier, "smtp": smtp, "clock": clock, "executor": executor,
           "base": f"http://127.0.0.1:{server.port}"}
    deliverer.stop()
    server.stop()
    smtp.stop()
    store.dispose()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=412,915"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def mailed_link(lab, ticket_id):
    """The link of the mail that tells dan about ``ticket_id`` (delivered by the real worker)."""
    lab["notifier"].announce(ticket_id)
    deadline = time.time() + 60
    while time.time() < deadline:
        for rcpts, msg in lab["smtp"].wait(1, timeout=1):
            body = msg.get_payload(decode=True).decode()
            if rcpts == ["dan@example.com"] and f"[ticket #{ticket_id}]" in msg["Subject"]:
                return LINK.search(body).group(1)
        time.sleep(0.1)
    raise AssertionError(f"no mail for ticket {ticket_id}: {lab['smtp'].messages}")


def page_text_after(browser, expected, seconds=30):
    """The page's text once the navigation a click started has shown ``expected`` (the old page may linger)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver):
        try:
            text = driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException:  # between two documents: no body yet
            return False
        return text if expected in text else False

    return WebDriverWait(browser, seconds).until(shown, f"the page never showed {expected!r}")


def test_the_mailed_link_shows_the_ticket_escaped_and_approves_it_once_as_dan(lab, browser):
    from selenium.webdriver.common.by import By

    ticket = lab["flow"].create("bob", "maint", {"host": "web1.example.com", "env": "dev", "reason": "<i>x</i>"},
                                title=TITLE)
    link = mailed_link(lab, ticket["id"])
    browser.get(link)
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == f"#{ticket['id']} {TITLE}"  # shown as text, never run as markup
    assert browser.title == f"Ticket #{ticket['id']}"
    assert "<i>x</i>" in browser.find_element(By.TAG_NAME, "table").text
    assert browser.find_elements(By.TAG_NAME, "script") == [] and browser.find_elements(By.TAG_NAME, "b")[0].text \
        == "bob"
    browser.find_element(By.NAME, "comment").send_keys("ok from my phone")
    browser.find_element(By.ID, "approve").click()
    assert f"You approved ticket #{ticket['id']} as dan" in page_text_after(browser, "You approved")
    shown = lab["flow"].show("bob", ticket["id"])
    assert (shown["state"], shown["action_state"]) == ("completed", "done")
    assert [(a["acted_by"], a["comment"]) for a in shown["approvals"]] == [("dan", "ok from my phone")]
    assert [c["ticket_id"] for c in lab["executor"].calls].count(ticket["id"]) == 1
    browser.get(link)  # the same link again
    assert "already used" in browser.find_element(By.ID, "refused").text
    token = link.split("t=")[1]
    replay = requests.post(f"{lab['base']}/approve", data={"t": token, "decision": "reject"}, timeout=30)
    assert replay.status_code == 410 and lab["flow"].show("bob", ticket["id"])["state"] == "completed"


def test_reject_from_the_page_and_an_expired_or_forged_link_is_refused(lab, browser):
    from selenium.webdriver.common.by import By

    first = lab["flow"].create("bob", "maint", {"host": "web1.example.com", "env": "dev"})
    browser.get(mailed_link(lab, first["id"]))
    browser.find_element(By.ID, "reject").click()
    assert f"You rejected ticket #{first['id']}" in page_text_after(browser, "You rejected")
    assert lab["flow"].show("bob", first["id"])["state"] == "rejected"

    late = lab["flow"].create("bob", "maint", {"host": "web1.example.com", "env": "dev"})
    link = mailed_link(lab, late["id"])
    lab["clock"].offset = 2 * 3600
    try:
        browser.get(link)
        assert "expired" in browser.find_element(By.ID, "refused").text
    finally:
        lab["clock"].offset = 0.0
    forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    browser.get(forged)
    assert browser.find_element(By.ID, "refused").text == "this link is not valid"
    assert lab["flow"].show("bob", late["id"])["state"] == "in_approval"


def test_the_page_sets_safe_headers_and_refuses_large_bodies_and_bad_methods(lab):
    page = requests.get(f"{lab['base']}/approve?t=nonsense", timeout=30)
    assert page.status_code == 403
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    big = requests.post(f"{lab['base']}/approve", data={"t": "x" * 10000, "decision": "approve"}, timeout=30)
    assert big.status_code == 413
    assert requests.put(f"{lab['base']}/approve", timeout=30).status_code == 405
    assert requests.get(f"{lab['base']}/other", timeout=30).status_code == 404
