"""Screenshots of both dashboards for the README (docs/screenshots/*.png): `make screenshots`.

It builds a small taxifare workspace in a temporary folder, starts its servers (`modelcycle up`),
runs the first cycle and a short backtest, makes every cycle escalate (an unreachable
gate.threshold), deploys the cycle, starts `modelcycle worker` and a deployed run of 2015-04
through Prefect's REST API, and waits until that run is PAUSED for a human. Headless Chromium,
driven over its DevTools protocol (a websocket), then photographs:

- prefect-runs.png        the Prefect UI's flow runs
- prefect-approval.png    the paused run's page with its approval form (after a click on Resume)
- mlflow-experiment.png   the MLflow UI's experiment with one run per cycle
- mlflow-model.png        the registered model with its versions and aliases

Then it answers the paused run (`modelcycle reject`), stops the worker and the servers and
removes the workspace, also when something failed on the way.

Needs Debian's chromium (installed with apt-get when missing). Run: make screenshots
(or PYTHONPATH=src .venv/bin/python scripts/screenshots.py [--out DIR] [--keep DIR]).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).with_name("modelcycle"))
MODEL = "taxifare"
WINDOW = "2015-04"  # the deployed run's window: the one after the backtest
WIDTH, HEIGHT = 1440, 900
# settings a caller's shell may carry that would point the workspace at other servers
FOREIGN = ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PREFECT_HOME")


def say(message: str) -> None:
    print(f"[screenshots {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- pure helpers (unit-tested)

def with_gate_threshold(yaml_text: str, value: str) -> str:
    """modelcycle.yaml's text with ``gate.threshold`` set to ``value`` (comments kept)."""
    pattern = re.compile(r"^(gate:[ \t]*(?:#.*)?\n(?:[ \t]+.*\n|[ \t]*\n)*?[ \t]+threshold:)[ \t]*[^#\n]*?([ \t]*(?:#.*)?)$",
                         re.M)
    text, n = pattern.subn(lambda m: f"{m.group(1)} {value}{m.group(2)}", yaml_text, count=1)
    if n != 1:
        raise SystemExit("modelcycle.yaml has no gate.threshold to change")
    return text


def blankness(png: Path) -> str | None:
    """Why a screenshot looks empty (one colour, a few colours, nearly all one colour), or None."""
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        small = rgb.resize((rgb.width // 4, rgb.height // 4))
        colours = small.getcolors(maxcolors=1 << 20) or []
    if len(colours) < 16:
        return f"only {len(colours)} colours"
    top = max(count for count, _ in colours)
    if top / (small.width * small.height) > 0.97:
        return "nearly all one colour"
    return None


# ---------------------------------------------------------------- chromium

def ensure_chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise SystemExit("chromium is not installed and there is no apt-get here: install Chromium "
                         "(Debian/Ubuntu: `apt-get install chromium`) and run again")
    say("chromium is missing: installing Debian's chromium (apt-get install -y chromium)")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        raise SystemExit("chromium is not installed and this user cannot run apt-get: "
                         "run `sudo apt-get install -y chromium` and run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(sudo + step, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(sudo + step)}` failed (exit {done.returncode}): install chromium "
                             "yourself (`apt-get install -y chromium`) and run again")
    found = shutil.which("chromium")
    if not found:
        raise SystemExit("apt-get installed chromium, yet `chromium` is not on PATH")
    return found


class Browser:
    """Headless Chromium, driven over the DevTools protocol (one page, flat session)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ws: Any = None
        self.session = ""
        self.next_id = 0

    def connect(self) -> None:
        from websockets.sync.client import connect

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.resize(HEIGHT)

    def resize(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(1)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> Any:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:  # events arrive in between; skip them
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def wait_text(self, *texts: str, timeout: float = 60) -> None:
        """Wait until the page shows every one of ``texts``, then let it settle."""
        probe = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        deadline = time.monotonic() + timeout
        while not self.js(f"!!document.body && {probe}"):
            if time.monotonic() > deadline:
                seen = (self.js("document.body ? document.body.innerText : ''") or "")[:600]
                raise SystemExit(f"the page never showed {texts}; it shows: {seen!r}")
            time.sleep(0.5)
        time.sleep(2)  # charts and late requests

    def click(self, text: str, *, selector: str = "button", required: bool = True) -> bool:
        """Click the first ``selector`` element whose text or aria-label is ``text``."""
        found = bool(self.js(f"""(() => {{
            const t = {json.dumps(text)};
            const b = [...document.querySelectorAll({json.dumps(selector)})]
                .find(e => e.innerText.trim() === t || e.getAttribute('aria-label') === t);
            if (!b) return false; b.click(); return true; }})()"""))
        if required and not found:
            raise SystemExit(f"nothing {text!r} to click on {self.js('location.href')}")
        time.sleep(1)
        return found

    def screenshot(self, out: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        out.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.ws is not None:
                self.ws.close()
        stop_group(self.proc, "chromium")


def stop_group(proc: subprocess.Popen[Any], what: str, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"{what} did not stop within {timeout:.0f} s: killed")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- the workspace

def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    return env


def mc(ws: Path | None, *args: str, timeout: float = 600) -> str:
    argv = [EXE, *(["-w", str(ws)] if ws else []), *args]
    say("modelcycle " + " ".join(args))
    done = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`modelcycle {' '.join(args)}` failed (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def servers(ws: Path) -> dict[str, Any]:
    return dict(json.loads((ws / ".modelcycle" / "servers.json").read_text()))


class Prefect:
    """The few calls of Prefect's REST API this script makes."""

    def __init__(self, api: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=api, timeout=30)

    def start(self, deployment: str, window: str) -> str:
        r = self.http.get(f"/deployments/name/modelcycle-cycle/{deployment}")
        r.raise_for_status()
        r = self.http.post(f"/deployments/{r.json()['id']}/create_flow_run", json={"parameters": {"window": window}})
        r.raise_for_status()
        return str(r.json()["id"])

    def state(self, run: str) -> str:
        r = self.http.get(f"/flow_runs/{run}")
        r.raise_for_status()
        return str(r.json()["state_type"])

    def wait(self, run: str, states: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (state := self.state(run)) not in states:
            if state in ("FAILED", "CRASHED", "CANCELLED"):
                raise SystemExit(f"the deployed run of {WINDOW} ended {state} (see the worker's log above)")
            if time.monotonic() > deadline:
                raise SystemExit(f"the deployed run of {WINDOW} is still {state} after {timeout:.0f} s")
            time.sleep(1)


def mlflow_experiment_id(tracking: str) -> str:
    import httpx

    r = httpx.get(f"{tracking}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": MODEL}, timeout=30)
    r.raise_for_status()
    return str(r.json()["experiment"]["experiment_id"])


def prepare(ws: Path) -> None:
    mc(None, "init", str(ws), "--example", MODEL, "--rows-per-month", "3000")
    mc(ws, "up")
    mc(ws, "run", "--window", "2014-12")
    mc(ws, "backtest", "--from", "2015-01", "--to", "2015-03")
    config = ws / "modelcycle.yaml"
    config.write_text(with_gate_threshold(config.read_text(), "0.5"))  # no model gets there: every cycle escalates
    subprocess.run(["git", "commit", "-qam", "an unreachable threshold: every cycle asks a human"], cwd=ws, check=True)
    mc(ws, "deploy")


def hold_watcher(ws: Path, window: str) -> None:
    """Tell the worker's data watcher that ``window`` was announced: this script starts its run."""
    sys.path.insert(0, str(ROOT / "src"))
    from modelcycle.config import Workspace
    from modelcycle.lifecycle import automation
    from modelcycle.lifecycle.watch import Announced

    Announced.load(Workspace.load(ws)).note(automation.EVENT_WINDOW, window, automation.utcnow())


def start_worker(ws: Path, log: Path) -> subprocess.Popen[bytes]:
    say("modelcycle worker (in the background)")
    with open(log, "wb") as out:
        return subprocess.Popen([EXE, "-w", str(ws), "worker"], env=clean_env(), stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)


# ---------------------------------------------------------------- the screenshots

# the MLflow runs table's columns: the cycle's figures and its decision
MLFLOW_COLUMNS = ["metrics.`champion_mae`", "metrics.`challenger_mae`", "metrics.`noise_floor`",
                  "tags.`modelcycle.decision`", "attributes.`Models`"]


def shoot(browser: Browser, path: Path, height: int = HEIGHT) -> Path:
    browser.resize(height)
    browser.screenshot(path)
    browser.resize(HEIGHT)
    why = blankness(path)
    if why:
        raise SystemExit(f"{path} looks blank ({why})")
    return path


def prefect_runs(browser: Browser, out: Path, ui: str) -> Path:
    browser.open(f"{ui}/runs")
    browser.wait_text(WINDOW, "2014-12", "Paused")
    return shoot(browser, out / "prefect-runs.png", height=1300)  # the chart and all six runs below it


def prefect_approval(browser: Browser, out: Path, ui: str, run: str) -> Path:
    browser.open(f"{ui}/runs/flow-run/{run}")
    browser.wait_text(WINDOW, "Paused", "Resume")
    browser.click("Resume")  # the form of the run's RunInput opens in a dialog
    browser.wait_text("Resume Flow Run", "a human decides", "Submit")
    return shoot(browser, out / "prefect-approval.png")


def mlflow_experiment(browser: Browser, out: Path, ui: str, experiment: str) -> Path:
    url = f"{ui}/#/experiments/{experiment}/runs"
    browser.open(url)
    browser.wait_text("2015-03", "2014-12")
    browser.click("Close", required=False)  # the assistant's panel opens by itself on a first visit
    browser.click("Model training", selector="div[role=button]", required=False)  # not the GenAI view
    key = f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment}"]-ReactComponentState'
    browser.js(f"""(() => {{ const k = {json.dumps(key)}; const st = JSON.parse(localStorage.getItem(k) || '{{}}');
        st.selectedColumns = {json.dumps(MLFLOW_COLUMNS)}; localStorage.setItem(k, JSON.stringify(st)); }})()""")
    browser.call("Page.reload")
    browser.wait_text("2015-03", "challenger_mae", "promote")
    return shoot(browser, out / "mlflow-experiment.png", height=560)  # the table; no empty page below


def mlflow_model(browser: Browser, out: Path, ui: str) -> Path:
    browser.open(f"{ui}/#/models/{MODEL}")
    browser.wait_text("champion", "Version 4")
    # the model's tags (the alias moves' history) push the versions down: fold them
    browser.click("Tags", selector="h2, h3, h4, span, div[role=button], button")
    return shoot(browser, out / "mlflow-model.png")


def photograph(browser: Browser, out: Path, urls: dict[str, str], run: str, experiment: str) -> list[Path]:
    say(f"photographing the Prefect UI ({urls['prefect']}) and the MLflow UI ({urls['mlflow']})")
    return [prefect_runs(browser, out, urls["prefect"]), prefect_approval(browser, out, urls["prefect"], run),
            mlflow_experiment(browser, out, urls["mlflow"], experiment), mlflow_model(browser, out, urls["mlflow"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", type=Path, help="build the workspace here and keep it (default: a temp folder)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    chromium = ensure_chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="modelcycle-screenshots-"))
    ws = (args.keep or tmp / "ws").resolve()
    worker: subprocess.Popen[bytes] | None = None
    browser: Browser | None = None
    prefect: Prefect | None = None
    run = ""
    try:
        prepare(ws)
        urls = {name: entry["ui"] for name, entry in servers(ws).items()}
        prefect = Prefect(servers(ws)["prefect"]["url"])
        hold_watcher(ws, WINDOW)
        worker = start_worker(ws, tmp / "worker.log")
        run = prefect.start(MODEL, WINDOW)
        say(f"deployed run {run} of {WINDOW} started; waiting until it pauses for a human")
        prefect.wait(run, ("PAUSED",), timeout=300)
        browser = Browser(chromium, tmp / "chromium")
        browser.connect()
        for path in photograph(browser, args.out, urls, run, mlflow_experiment_id(urls["mlflow"])):
            say(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
                f"({path.stat().st_size // 1024} KB)")
    finally:
        if browser is not None:
            browser.close()
        if worker is not None:
            with contextlib.suppress(Exception, SystemExit):
                if prefect is not None and run and prefect.state(run) == "PAUSED":
                    mc(ws, "reject", WINDOW, "--by", "screenshots", "-m", "a picture, not a decision")
                    prefect.wait(run, ("COMPLETED",), timeout=120)
            say("stopping the worker")
            stop_group(worker, "the worker", timeout=60)
            if worker.returncode not in (0, None):
                say(f"the worker ended with exit {worker.returncode}; its log:\n"
                    + (tmp / "worker.log").read_text(errors="replace")[-3000:])
        if (ws / ".modelcycle" / "servers.json").exists():
            with contextlib.suppress(SystemExit):
                mc(ws, "down")
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"done in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
