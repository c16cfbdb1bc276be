"""A real browser on bnsearch's MLflow UI: follow the link bnsearch prints, land on the runs
table, open the study's parent run and find the verdict without scrolling.

Drives Debian's Chromium headless through Selenium and Debian's chromedriver
(``apt-get install chromium chromium-driver``; ``pip install selenium``). Used by
``tests/test_ui.py``; run it alone on a store of your own with

    python -m tests.ui_browser --study-name NAME [--tracking-uri URI] [--out FOLDER]

which starts ``python -m bnsearch ui`` on a free port, checks, and leaves two screenshots
(``runs_table.png``, ``parent_run.png``) in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

CHROMIUM = os.environ.get("BNSEARCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BNSEARCH_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1280, 900)


def missing() -> str | None:
    """Why the check cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@dataclass
class UiCheck:
    link: str  # what bnsearch printed
    landed_on_runs: bool
    verdict_visible: bool  # the run's name, which carries the verdict, on the first screen
    verdict_top: float
    screenshots: list[Path]


def start_ui(study: str, tracking_uri: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """``python -m bnsearch ui --study-name S`` on a free port; the runs link it prints.
    A port another process took meanwhile (the suite runs servers beside it) is given up
    for another, up to three times."""
    for attempt in range(3):
        try:
            return _start_ui_once(study, tracking_uri, cwd)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("not reached")


class PortTaken(RuntimeError):
    """The UI exited before it answered (its port was taken meanwhile)."""


def _start_ui_once(study: str, tracking_uri: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """Its output goes to ``cwd/ui.log``, not a pipe: a pipe nobody drains fills up with the
    server's access log and stalls it."""
    port = free_port()
    log = cwd / "ui.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bnsearch", "ui", "--study-name", study, "--tracking-uri",
             tracking_uri, "--port", str(port)],
            cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    deadline = time.monotonic() + 180  # a loaded 2-core machine (the suite runs beside it)
    link = ""
    while time.monotonic() < deadline and not link and process.poll() is None:
        found = re.search(r"(http://\S+workflowType=machine_learning)", log.read_text())
        link = found.group(1) if found else ""
        time.sleep(0.2)
    import urllib.request

    while link and time.monotonic() < deadline and process.poll() is None:
        try:
            # Straight to the local server, never through a proxy of the environment.
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with direct.open(f"http://127.0.0.1:{port}/health", timeout=2):
                return process, link
        except OSError:
            time.sleep(0.5)
    exited = process.poll() is not None
    process.kill()
    tail = log.read_text()[-1500:]
    if exited and "address already in use" in tail.lower():
        raise PortTaken(tail)
    raise RuntimeError(f"the MLflow UI did not come up within 180 s; its output:\n{tail}")


def check(link: str, run_name: str, verdict: str, out: Path) -> UiCheck:
    """Open ``link`` in a fresh headless Chromium, click the run ``run_name`` in the runs
    table; on its page, the run's name (which ends with the verdict's outcome and interval)
    must be on the first screen, and the verdict's statement (its description) on the page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    out.mkdir(parents=True, exist_ok=True)
    shots = [out / "runs_table.png", out / "parent_run.png"]
    # The name starts with the answer (shared by runs with the same outcome) and ends with
    # the run's own ``study-<timestamp>``, which finds this run among them.
    unique = run_name.split(" · ")[-1]
    try:
        wait = WebDriverWait(driver, 180)  # a cold browser on a busy 2-core machine
        driver.get(link)
        in_table = f"//a[contains(normalize-space(.), '{unique}')]"
        wait.until(ec.element_to_be_clickable((By.XPATH, in_table)))
        time.sleep(1)  # let the table finish drawing for the screenshot
        driver.save_screenshot(str(shots[0]))
        landed = "/runs" in driver.current_url and bool(
            driver.find_elements(By.XPATH, "//*[normalize-space(text())='Run Name']")
        )
        row = wait.until(ec.element_to_be_clickable((By.XPATH, in_table)))  # redrawn since
        row.click()
        named = f"//*[normalize-space(text())='{run_name}']"
        wait.until(ec.presence_of_element_located((By.XPATH, named)))
        first_words = verdict[:40].replace("'", "")
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(., '{first_words}')]")))
        time.sleep(1)
        driver.save_screenshot(str(shots[1]))
        # Found and measured in one step: the page redraws as its panels load.
        top = float(
            driver.execute_script(
                "const r = document.evaluate(arguments[0], document, null, "
                "XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;"
                "return r ? r.getBoundingClientRect().top : -1;",
                named,
            )
        )
        height = float(driver.execute_script("return window.innerHeight"))
        return UiCheck(link, landed, 0 <= top < height, top, shots)
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study-name", required=True)
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--out", default="mlruns/ui-check")
    args = parser.parse_args()
    reason = missing()
    if reason:
        print(f"ui check: cannot run: {reason}", file=sys.stderr)
        return 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.study_name)
    (run,) = client.search_runs(
        [experiment.experiment_id], "tags.`bnsearch.latest` = 'true'", max_results=1
    )
    process, link = start_ui(args.study_name, args.tracking_uri, Path.cwd())
    try:
        result = check(
            link, run.info.run_name, run.data.tags["bnsearch.verdict_text"], Path(args.out)
        )
    finally:
        process.terminate()
    print(result)
    return 0 if result.landed_on_runs and result.verdict_visible else 1


if __name__ == "__main__":
    sys.exit(main())
