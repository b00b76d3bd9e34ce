"""Make the README's two pictures: the review app and flag.html, on a small demo workspace.

    .venv/bin/python docs/screenshots.py [--keep DIR]

Draws a 400-image demo set, imports it, trains a quick round (2 folds, 1 epoch, 64 px: the pictures
show the tool, not a good model), flags it, opens the review app and the report in headless Chromium
(Debian's, driven by Playwright) and writes docs/images/review.png and docs/images/flag.png. Run it
again when the app or the report changes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
PORT = 7893
CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def labeler(*args) -> None:
    subprocess.run([sys.executable, "-m", "labeler", *map(str, args)], check=True)


def build(folder: Path) -> Path:
    from labeler.demo import DemoSpec, generate

    labels = generate(folder / "data", DemoSpec(n_images=400, duplicates=8), progress=False)
    ws = folder / "ws"
    labeler("import", ws, labels)
    labeler("train", ws, "--preset", "demo", "--folds", "2", "--epochs", "1", "--workers", "0")
    labeler("flag", ws)
    return ws


def shoot(ws: Path) -> None:
    from playwright.sync_api import sync_playwright

    IMAGES.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "labeler", "review", str(ws), "--port", str(PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in server.stdout:  # the app prints its link once it is ready
            if f"127.0.0.1:{PORT}" in line:
                break
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"http://127.0.0.1:{PORT}/")
            page.fill("#lab-name", "ann")
            page.press("#lab-name", "Enter")
            page.wait_for_selector("#current-item[data-item]:not([data-item=''])", timeout=60_000)
            page.wait_for_timeout(1500)  # images painted
            page.screenshot(path=str(IMAGES / "review.png"))
            report = sorted((ws / "reports").glob("round-*/flag.html"))[-1]
            page.goto(report.as_uri())
            page.wait_for_timeout(1000)
            page.screenshot(path=str(IMAGES / "flag.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name in ("review.png", "flag.png"):
        shrink(IMAGES / name)
    print(f"wrote {IMAGES / 'review.png'} and {IMAGES / 'flag.png'}")


def shrink(path: Path) -> None:
    """256 colours, optimised: a screenshot of flat UI loses nothing visible and a few hundred KB."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the demo workspace here and keep it")
    args = parser.parse_args()
    if args.keep:
        ws = args.keep / "ws" if (args.keep / "ws" / "labeler.db").exists() else build(args.keep)
        shoot(ws)
        return
    with tempfile.TemporaryDirectory(prefix="labeler-shots-") as tmp:
        shoot(build(Path(tmp)))


if __name__ == "__main__":
    main()
