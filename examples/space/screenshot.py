"""Render the Space's screenshot (`examples/space/screenshot.png`) from the real app with the shipped
trained pipeline, driven in headless Chromium (Debian's `chromium`, see `.ci/install-browser`):

    python examples/space/screenshot.py [--pipeline mnist-mimic] [--output examples/space/screenshot.png]

It purifies MNIST test digit #7 under the BPDA+EOT attack at the default eps and steps, exactly as a
visitor would, and saves the full page once the purified prediction is shown.
"""

import argparse
import os
import socket
import sys

import app  # this file's folder is on the path of a script run by its path

SPACE_DIR = os.path.dirname(os.path.abspath(__file__))

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pipeline", default=None, help="pipeline folder or Hub id (default: the shipped one)")
    p.add_argument("--output", default=os.path.join(SPACE_DIR, "screenshot.png"))
    p.add_argument("--digit", type=int, default=7, help="index of the MNIST test digit shown")
    args = p.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"error: {CHROMIUM} not found (run .ci/install-browser)")
    from playwright.sync_api import sync_playwright

    demo = app.build_demo(app.load_pipeline(args.pipeline))
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.locator("#index input").fill(str(args.digit))
            page.get_by_label(app.BPDA).check()
            page.locator("#purify").click()
            page.locator("#info").get_by_text("Purified with").wait_for(timeout=600_000)
            tmp = f"{args.output}.tmp-{os.getpid()}.png"
            page.screenshot(path=tmp, full_page=True)
            os.replace(tmp, args.output)  # never a half-written screenshot
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
