"""`birdgen-ray report`: the page's content from a real output, and the page in a real headless Chromium."""

from __future__ import annotations

import csv
import functools
import html
import http.server
import os
import shutil
import threading
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import fsspec
import matplotlib.image
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from birdgen_ray import open_index
from birdgen_ray.cli import app
from birdgen_ray.index.reader import read_clip_bytes
from birdgen_ray.report import ReportConfig, build_report
from tests.made_outputs import birdclef_plan, null_output
from tests.plans import plan_table

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Chromium as root on a closed network: no sandbox, no GPU, and none of its background connections.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2200",
]


@pytest.fixture(scope="module")
def birdclef_out(ray_local, tmp_path_factory) -> Path:
    """3 classes with 1-3 real recordings each, filled to 6 by the plan: 5 + 5 + 3 synthetic clips."""
    folder = tmp_path_factory.mktemp("birdclef")
    return null_output(folder, birdclef_plan(folder, n_classes=3, target=6))


class PageParser(HTMLParser):
    """Collects what the tests check: clip cards per class section, every img/audio source, table rows."""

    def __init__(self):
        super().__init__()
        self.section: str | None = None
        self.cards: dict[str, list[dict]] = {}
        self.images: list[str] = []
        self.audio: list[str] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs["id"]
            self.cards[self.section] = []
        elif tag == "figure" and self.section:
            self.cards[self.section].append({})
        elif tag == "img":
            self.images.append(attrs["src"])
            if self.section:
                self.cards[self.section][-1]["img"] = attrs["src"]
        elif tag == "audio":
            self.audio.append(attrs["src"])
            self.cards[self.section][-1]["audio"] = attrs["src"]
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(page: Path) -> PageParser:
    parser = PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_page_shows_sampled_clips_with_their_own_audio_spectrogram_and_balance(birdclef_out, tmp_path):
    page = build_report(birdclef_out, tmp_path / "report", ReportConfig(per_class=2))
    text = page.read_text(encoding="utf-8")
    parsed = parse(page)
    index = open_index(birdclef_out).to_pylist()
    per_label = Counter(r["label"] for r in index)
    assert len(per_label) == 3 and len(parsed.cards) == 3

    by_id = {r["clip_id"]: r for r in index}
    shown = []
    for cards in parsed.cards.values():
        assert len(cards) == 2  # every class has at least 3 clips
        labels = set()
        for card in cards:
            clip_id = Path(card["audio"]).stem
            assert Path(card["img"]).stem == clip_id
            row = by_id[clip_id]
            labels.add(row["label"])
            # the player plays exactly the shard's bytes; the spectrogram is a real PNG of the stated size
            assert (page.parent / card["audio"]).read_bytes() == read_clip_bytes(birdclef_out, row)
            assert matplotlib.image.imread(page.parent / card["img"]).shape[:2] == (220, 480)
            assert html.escape(row["prompt"]) in text
            shown.append(clip_id)
        assert len(labels) == 1  # a section holds one class
    assert len(set(shown)) == 6
    bands = [r for r in parsed.rows if r and r[0] == "band"]  # each card says its clip's band and model
    assert len(bands) == 6
    for band, clip_id in zip(bands, shown):
        assert band[1:] == [f"{by_id[clip_id]['bandwidth_hz'] / 1000:.1f} kHz", "model", by_id[clip_id]["model_id"]]

    # class balance: real counts from the real metadata file, synthetic from the index
    real = Counter(r["primary_label"] for r in csv.DictReader(open(birdclef_out.parent / "train_metadata.csv")))
    header = next(r for r in parsed.rows if "real (before)" in r)
    table = {r[0]: dict(zip(header, r)) for r in parsed.rows if r and r[0] in per_label}
    for label, synthetic in per_label.items():
        assert int(table[label]["real (before)"]) == real[label]
        assert int(table[label]["synthetic passed"]) == synthetic  # the null generator passes every clip
        assert int(table[label]["after"]) == real[label] + synthetic == 6
    for chart in ("_balance", "_metrics", "_verdicts", "_stages"):
        assert f"img/{chart}.png" in parsed.images and (page.parent / "img" / f"{chart}.png").stat().st_size > 0
    assert "13 clips in" in text and "clips/s" in text
    assert html.escape(f"null / {index[0]['model_id']}") in text  # generator (from summary settings) / model


def test_same_seed_shows_same_clips_and_another_seed_others(birdclef_out, tmp_path):
    def shown(seed: int, name: str) -> list[str]:
        page = build_report(birdclef_out, tmp_path / name, ReportConfig(per_class=1, seed=seed))
        return sorted(Path(src).stem for src in parse(page).audio)

    assert shown(0, "a") == shown(0, "b")
    assert shown(0, "a") != shown(1, "c")  # 5 x 5 x 3 choices: a fixed, different draw


def test_without_real_counts_the_page_says_so_and_escapes_prompts(ray_local, tmp_path):
    plan = plan_table(4, labels=("asbfly", "comkin1"))
    plan = plan.set_column(1, "prompt", pa.array([f"<b>loud</b> & clear {i}" for i in range(4)]))
    out = null_output(tmp_path, plan)
    page = build_report(out, config=ReportConfig(per_class=5))
    text = page.read_text(encoding="utf-8")
    assert page == out / "report" / "index.html"
    assert "Real counts unknown" in text and "real (before)" not in text
    assert "&lt;b&gt;loud&lt;/b&gt; &amp; clear 0" in text and "<b>loud" not in text
    assert sum(len(c) for c in parse(page).cards.values()) == 4  # fewer clips than --per-class: all


def test_cli_writes_the_report_and_names_bad_input(birdclef_out, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(birdclef_out), "--dest", str(tmp_path / "r"), "--per-class", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "index.html").is_file() and len(list((tmp_path / "r" / "audio").iterdir())) == 3

    labels = sorted({r["label"] for r in open_index(birdclef_out).to_pylist()})
    for label_args in (["--label", f"{labels[0]},{labels[1]}"], ["--label", labels[0], "--label", labels[1]]):
        dest = tmp_path / f"some-{len(label_args)}"  # comma-separated or repeated: the same two classes
        picked = runner.invoke(app, ["report", str(birdclef_out), "--dest", str(dest), "--per-class", "1", *label_args])
        assert picked.exit_code == 0, picked.output
        assert len(parse(dest / "index.html").cards) == 2 and len(list((dest / "audio").iterdir())) == 2

    missing = runner.invoke(app, ["report", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and "no index" in missing.output
    unknown = runner.invoke(app, ["report", str(birdclef_out), "--dest", str(tmp_path / "x"), "--label", "nosuch"])
    assert unknown.exit_code == 2 and "nosuch" in unknown.output


def test_report_of_an_s3_output_goes_to_a_local_dest(birdclef_out, tmp_path):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"key": "test", "secret": "test", "endpoint_url": f"http://{host}:{port}"}
        fs = fsspec.filesystem("s3", **options)
        # moto keeps its state per process: a bucket name of its own avoids clashing with other tests
        fs.mkdir("report-birds")
        fs.put(str(birdclef_out), "report-birds/run1", recursive=True)

        with pytest.raises(ValueError, match="pass --dest"):
            build_report("s3://report-birds/run1", storage_options=options)
        page = build_report(
            "s3://report-birds/run1", tmp_path / "r", ReportConfig(per_class=1), storage_options=options
        )
        audio = parse(page).audio
        assert len(audio) == 3
        row = next(r for r in open_index(birdclef_out).to_pylist() if r["clip_id"] == Path(audio[0]).stem)
        assert (page.parent / audio[0]).read_bytes() == read_clip_bytes(birdclef_out, row)
    finally:
        server.stop()


# --- the page in a real browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium driven by Selenium through Debian's chromedriver."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if not os.environ.get("CI"):
            pytest.skip(
                "Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
            )
        pytest.fail(f"CI must install chromium and chromium-driver: {CHROMIUM} or {CHROMEDRIVER} is missing")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"birdgen-chromium-{os.getpid()}"
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def serve():
    """Serve a folder over HTTP on 127.0.0.1 (a random free port) for one test."""
    servers = []

    def start(folder: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# Fetch every <audio> source and decode it with the browser's own decoder; wait for the players'
# metadata too. Returns one record per player.
CHECK_AUDIO = """
const done = arguments[arguments.length - 1];
(async () => {
  const players = [...document.querySelectorAll('audio')];
  const deadline = Date.now() + 20000;
  while (players.some(a => a.readyState < 1 && !a.error) && Date.now() < deadline) {
    await new Promise(r => setTimeout(r, 100));
  }
  const out = [];
  for (const a of players) {
    const rec = {src: a.currentSrc || a.src, readyState: a.readyState, elementDuration: a.duration,
                 mediaError: a.error ? a.error.code : null, status: null, decodedDuration: null, decodeError: null};
    try {
      const response = await fetch(rec.src);
      rec.status = response.status;
      const decoded = await new OfflineAudioContext(1, 1, 32000).decodeAudioData(await response.arrayBuffer());
      rec.decodedDuration = decoded.duration;
    } catch (e) { rec.decodeError = String(e); }
    out.push(rec);
  }
  return out;
})().then(done, e => done([{decodeError: String(e)}]));
"""
CHECK_IMAGES = (
    "return [...document.images].map(i => ({src: i.currentSrc, complete: i.complete, width: i.naturalWidth}));"
)


def page_problems(driver, url: str) -> tuple[list[str], list[dict]]:
    """Load `url`; every console error, broken image and unplayable audio source, as readable lines."""
    driver.get_log("browser")  # drop entries from earlier pages
    driver.get(url)
    problems = [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    images = driver.execute_script(CHECK_IMAGES)
    problems += [f"image not rendered: {i['src']}" for i in images if not (i["complete"] and i["width"] > 0)]
    audio = driver.execute_async_script(CHECK_AUDIO)
    for a in audio:
        if a["status"] != 200 or a["decodeError"] or not a["decodedDuration"] or a["readyState"] < 1:
            problems.append(f"audio not playable: {a}")
    problems += [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return problems, audio


def test_report_renders_and_plays_in_headless_chromium(chromium, serve, birdclef_out, tmp_path):
    page = build_report(birdclef_out, tmp_path / "report", ReportConfig(per_class=2))
    durations = {r["clip_id"]: r["duration_s"] for r in open_index(birdclef_out).to_pylist()}

    problems, audio = page_problems(chromium, serve(page.parent) + "index.html")
    assert problems == []
    assert len(audio) == 6 and len(chromium.execute_script(CHECK_IMAGES)) == 6 + 4  # clips + charts
    for a in audio:
        expected = durations[Path(a["src"]).stem]
        assert a["decodedDuration"] == pytest.approx(expected, abs=0.01)
        assert a["elementDuration"] == pytest.approx(expected, abs=0.01)

    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "report.png"
    assert chromium.save_screenshot(str(shot))
    print(f"screenshot of the report: {shot}")

    # opened as a file: relative links still resolve (fetch() is not allowed on file://, players are)
    chromium.get(page.as_uri())
    assert all(i["complete"] and i["width"] > 0 for i in chromium.execute_script(CHECK_IMAGES))
    states = chromium.execute_async_script(
        "const done = arguments[0]; const ps = [...document.querySelectorAll('audio')];"
        "const t = Date.now(); (function wait() { if (ps.every(a => a.readyState >= 1) || Date.now() - t > 20000)"
        " done(ps.map(a => a.duration)); else setTimeout(wait, 100); })();"
    )
    assert len(states) == 6 and all(d > 0 for d in states)


def test_browser_check_catches_a_missing_image_and_a_broken_audio_file(chromium, serve, birdclef_out, tmp_path):
    """The check above can fail: break one spectrogram and one WAV and it names both."""
    page = build_report(birdclef_out, tmp_path / "report", ReportConfig(per_class=1))
    parsed = parse(page)
    (page.parent / parsed.images[-1]).unlink()
    (page.parent / parsed.audio[0]).write_bytes(b"RIFF not really a wav file")

    problems, _ = page_problems(chromium, serve(page.parent) + "index.html")
    assert any(p.startswith("image not rendered") and parsed.images[-1] in p for p in problems)
    assert any(p.startswith("audio not playable") and parsed.audio[0] in p for p in problems)


def test_spectrogram_puts_a_tone_at_its_frequency_and_marks_the_bandwidth(tmp_path):
    import numpy as np
    from PIL import Image

    from birdgen_ray.report.spectrograms import LINE_INDEX, render_spectrogram

    rate, seconds = 32_000, 1.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 4_000 * t)).astype(np.float32)  # a quarter of the way up to 16 kHz
    path = render_spectrogram(tone, rate, tmp_path / "s.png", bandwidth_hz=8_000)
    pixels = np.asarray(Image.open(path))  # palette indices, row 0 at the top
    assert pixels.shape == (220, 480)
    line_row = round(0.5 * 219)  # 8 kHz: half-way up
    assert (pixels[line_row] == LINE_INDEX).mean() == pytest.approx(0.5, abs=0.05)  # dashed
    shade = np.where(pixels == LINE_INDEX, 0, pixels).astype(int)
    loudest_row = int(np.argmax(shade.mean(axis=1)))
    assert abs(loudest_row - round(0.75 * 219)) <= 2  # 4 kHz: three quarters of the way down
    assert shade[: line_row - 2].max() < shade[loudest_row].mean() / 2  # nothing bright above 8 kHz
