"""Take docs/listening_room.png, the picture of the listening room in README and
docs/generation.md: serve an export (python play.py EXPORT --serve), open the page in headless
Chromium (Debian's chromium and chromium-driver, selenium), make clips of two seeds, keep
them, move the morph slider, and save what the browser shows.

    python docs/room_screenshot.py EXPORT [--seeds 5 9] [--output docs/listening_room.png]
"""

import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils import ArgumentParser, run_cli


def main(argv=None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="a folder a trainer's --export wrote")
    parser.add_argument("--seeds", type=int, nargs=2, default=[5, 9],
                        help="the two seeds whose clips are made and kept (the morph's ends)")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "listening_room.png"),
                        help="where the picture goes (default: docs/listening_room.png)")
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "play.py", args.export, "--serve", "--port", "0"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1000,1500",
                     "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        def css(selector):
            return driver.find_elements(By.CSS_SELECTOR, selector)

        wait.until(lambda d: css("body[data-ready]"))
        driver.execute_script("localStorage.clear()")
        for seed in args.seeds:
            css("#seeds")[0].clear()
            css("#seeds")[0].send_keys(str(seed))
            css("#generate")[0].click()
            wait.until(lambda d, s=seed: css(f'.clip[data-seed="{s}"] button.keep'))
            css(f'.clip[data-seed="{seed}"] button.keep')[0].click()
        css("#seeds")[0].clear()
        css("#seeds")[0].send_keys(" ".join(map(str, args.seeds)))
        css("#generate")[0].click()
        wait.until(lambda d: len(css(".clip")) == len(args.seeds))
        css("#morph-t")[0].click()
        css("#morph-t")[0].send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: css("#morph-clip audio"))
        driver.set_window_size(1000, driver.execute_script(
            "return document.body.scrollHeight") + 40)
        driver.save_screenshot(args.output)
        print(f"wrote {args.output}")
    finally:
        driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
