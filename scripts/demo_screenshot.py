"""Screenshot of `mtl-translate demo` for the README: serves the demo of --model on a free local port, types --text in
headless Chromium (Debian's, driven by playwright: `apt-get install chromium`, `pip install playwright`, no
`playwright install`), clicks Translate, waits for every language and saves the page. tests/test_demo.py drives the
page with the same functions.

    python scripts/demo_screenshot.py --model outputs/quickstart --out docs/demo.png [--text "Save the document"]
"""

import argparse
import re
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
# headless, offline and quiet: no sandbox (containers run as root), no GPU, no background calls home
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextmanager
def serve(model: str, **kwargs):
    """The demo of `model` on 127.0.0.1 (the first free port from 7860), in this process; yields its URL, then stops
    the server."""
    from mtl_translate.demo import launch_demo

    demo = launch_demo(model, port=None, server_name="127.0.0.1", prevent_thread_lock=True, **kwargs)
    try:
        yield demo.local_url
    finally:
        demo.close()


@contextmanager
def browser_page(url: str, width: int = 1100):
    """A headless Chromium page showing `url`, once the source box is there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(url)
            page.locator("#source textarea").wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def translate_on_page(page, text: str, n_langs: int) -> str:
    """Type `text`, click Translate and wait until the latency line reports `n_langs` languages; returns that line."""
    from playwright.sync_api import expect

    page.locator("#source textarea").fill(text)
    page.locator("#translate").click()
    latency = page.locator("#latency")
    expect(latency).to_have_text(re.compile(rf"\d+ ms for {n_langs} languages?"), timeout=60_000)
    return latency.inner_text()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder or Hub repo id")
    p.add_argument("--out", default="docs/demo.png")
    p.add_argument("--text", default="Save the current document")
    args = p.parse_args(argv)
    from mtl_translate.tokenization_mtl import load_config

    n_langs = len(load_config(args.model).languages)
    with serve(args.model) as url, browser_page(url) as page:
        print(translate_on_page(page, args.text, n_langs))
        page.screenshot(path=args.out, full_page=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
