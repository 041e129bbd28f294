"""The listening room (python play.py EXPORT --serve, listening_room.py): its API over HTTP,
bad requests and a bad start, and the page driven in a real headless Chromium (Debian's
chromium and chromium-driver, which .ci/run installs; selenium from PyPI)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from helpers import (
    NARROW_DIVISOR,
    ROOT,
    assert_one_line_error,
    assert_stops_cleanly,
    play_with_ctrl_c_ignored,
    untrained_checkpoint,
)

import train_progressive

CONFIG = {"model": "progressive", "num_blocks": 1, "channels": 1, "frozen": False,
          "feature_map_smoothing": True, "use_sample_norm": False, "sampling_rate": 16000,
          "model_variant": "standard", "feature_map_divisor": NARROW_DIVISOR}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FIREFOX = "firefox-esr"
LABELS = ["drums", "strings"]


def exported(folder, config):
    """An export of an untrained stage-1 checkpoint of config (its moving average), which
    best.json names as the stage's best evaluation."""
    from helpers import run
    directory = untrained_checkpoint(str(folder / "ck"), train_progressive, config, "")
    os.makedirs(os.path.join(directory, "best"))
    with open(os.path.join(directory, "best", "best.json"), "w") as f:
        json.dump({"step": 7, "frechet_mel_distance": 123.4, "rms_ratio": 0.8,
                   "checkpoint": "ckpt-7"}, f)
    code, out, err = run(train_progressive.main, "--checkpoint_dir", str(folder / "ck"),
                         "--num_blocks", "1", "--export", str(folder / "export"))
    assert code == 0, out + err
    return str(folder / "export")


def serving(export_folder):
    """play.py EXPORT --serve on a free port: its URL; stopped with Ctrl+C (SIGINT) after the
    module, which it must survive cleanly."""
    process = subprocess.Popen([sys.executable, "play.py", export_folder, "--serve", "--port",
                                "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = process.stdout.readline()
    assert "listening room for" in line, line + process.stderr.read()
    yield line.split(" at ")[1].split()[0]
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err, out + err


@pytest.fixture(scope="module")
def export_folder(module_tmp):
    return exported(module_tmp, CONFIG)


@pytest.fixture(scope="module")
def server(export_folder):
    yield from serving(export_folder)


@pytest.fixture(scope="module")
def labelled_export(module_tmp):
    """The same of a model conditioned on two labels (--condition folders)."""
    return exported(module_tmp / "labelled", {**CONFIG, "labels": LABELS})


@pytest.fixture(scope="module")
def labelled_server(labelled_export):
    yield from serving(labelled_export)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_room_stops_on_a_signal_even_started_with_ctrl_c_ignored(export_folder, signum):
    """A background job of a script inherits SIGINT ignored (and Python leaves it so): the
    room listens for it anyway, and for SIGTERM."""
    process = play_with_ctrl_c_ignored(export_folder, "--serve", "--port", "0")
    assert b"listening room for" in process.stdout.readline()
    assert_stops_cleanly(process, signum)


def get(url):
    """(status, headers, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def played(export_folder, seed, tmp_path, *flags):
    """The name and bytes of the file play.py EXPORT --generate 1 --seed S [flags] writes."""
    out = tmp_path / f"play{seed}"
    result = subprocess.run([sys.executable, "play.py", export_folder, "--generate", "1",
                             "--seed", str(seed), "--output_dir", str(out), *flags], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    [name] = os.listdir(out)
    return name, (out / name).read_bytes()


def test_a_clip_is_the_file_play_generate_writes_for_its_seed(server, export_folder, tmp_path):
    status, headers, body = get(server + "api/wav?kind=clip&seed=5&download=1")
    name, expected = played(export_folder, 5, tmp_path)
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    assert f'filename="{name}"' in headers["Content-Disposition"]
    assert body == expected


def test_the_facts_are_the_exports(server, export_folder):
    status, _, body = get(server + "api/facts")
    facts = json.loads(body)
    with open(os.path.join(export_folder, "model.json")) as f:
        info = json.load(f)
    assert status == 200 and facts["labels"] == []
    for key in ("stage", "window", "sampling_rate", "channels", "variant", "step", "weights"):
        assert facts["facts"][key] == info[key]
    assert facts["facts"]["scores"] == {"step": 7, "frechet_mel_distance": 123.4,
                                        "rms_ratio": 0.8, "of": "this step"}


def test_a_morph_and_a_walk_sound_and_have_their_pictures(server):
    status, _, morph = get(server + "api/wav?kind=morph&a=1&b=2&t=0.25")
    assert status == 200 and morph[:4] == b"RIFF"
    status, _, walk = get(server + "api/wav?kind=walk&seeds=1,2,3&seconds=0.25")
    assert status == 200 and len(walk) == 44 + 2 * 4000  # 0.25 s, mono, 16-bit
    status, _, body = get(server + "api/picture?kind=walk&seeds=1,2,3&seconds=0.25")
    picture = json.loads(body)
    assert status == 200 and picture["seconds"] == 0.25 and len(picture["waveform"]) == 600
    spectrogram = picture["spectrogram"]
    assert len(spectrogram["values"]) == spectrogram["rows"] * spectrogram["columns"]


@pytest.mark.parametrize("query, message", [
    ("kind=clip&seed=-3", "seed -3 is out of range"),
    ("kind=clip&seed=abc", "seed 'abc' is not a whole number"),
    ("kind=morph&a=1&b=2&t=2", "t must be a number from 0 to 1"),
    ("kind=walk&seeds=1&seconds=100000", "at most 12.2 s at this stage"),
    ("kind=walk&seeds=&seconds=3", "keep a clip's seed first"),
    ("kind=clip&seed=1&label=jazz", "trained without: drop --label"),
    ("kind=clip&seed=1&strength=2", "trained without: drop --label_strength"),
    ("kind=clip&seed=1&strength=x", "strength 'x' is not a number"),
    ("kind=sing", "kind must be clip, morph or walk"),
])
def test_a_bad_request_is_one_line_and_the_server_goes_on(server, query, message):
    status, _, body = get(server + "api/wav?" + query)
    assert status == 400 and message in json.loads(body)["error"]
    assert get(server + "api/wav?kind=clip&seed=1")[0] == 200


def test_a_labelled_clip_is_play_generate_at_its_label_and_strength(labelled_server,
                                                                     labelled_export, tmp_path):
    assert json.loads(get(labelled_server + "api/facts")[2])["labels"] == LABELS
    status, headers, body = get(labelled_server + "api/wav?kind=clip&seed=5&label=strings"
                                "&strength=2&download=1")
    name, expected = played(labelled_export, 5, tmp_path, "--label", "strings",
                            "--label_strength", "2")
    assert status == 200 and f'filename="{name}"' in headers["Content-Disposition"]
    assert "_strings_strength2_" in name and body == expected
    drums = get(labelled_server + "api/wav?kind=clip&seed=5&label=drums&strength=2")
    assert drums[0] == 200 and drums[2] != body
    for query, message in (("label=piano", "knows no label piano"),
                           ("", "choose a label: drums, strings")):
        status, _, body = get(labelled_server + "api/wav?kind=clip&seed=5&" + query)
        assert status == 400 and message in json.loads(body)["error"]


def test_a_folder_that_is_no_export_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "play.py", str(tmp_path), "--serve"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert_one_line_error(result.returncode, result.stderr, "is not an export folder")


def test_a_port_in_use_or_a_host_not_of_this_machine_is_one_line(export_folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "play.py", export_folder, "--serve",
                                 "--port", str(port)], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
    assert_one_line_error(result.returncode, result.stderr, f"cannot listen on 127.0.0.1:{port}",
                          "another --port")
    result = subprocess.run([sys.executable, "play.py", export_folder, "--serve", "--host",
                             "999.1.1.1"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)  # it said "pass another --port"
    assert_one_line_error(result.returncode, result.stderr, "cannot listen on 999.1.1.1:8765",
                          "pass --host an address of this machine")


# --------------------------------------------------------------------------- in a browser

@pytest.fixture(scope="module")
def browser():
    """A headless browser driven by selenium: Chromium (what CI installs), or Firefox with
    ROOM_BROWSER=firefox (Debian's firefox-esr and a geckodriver on PATH, which Debian does
    not package: docs/generation.md says how the page was checked in it). A missing
    browser fails."""
    from selenium import webdriver

    if os.environ.get("ROOM_BROWSER", "chromium") == "firefox":
        missing = [name for name in (FIREFOX, "geckodriver") if not shutil.which(name)]
        assert not missing, f"{' and '.join(missing)} missing for ROOM_BROWSER=firefox"
        options = webdriver.FirefoxOptions()
        options.binary_location = shutil.which(FIREFOX)
        options.add_argument("-headless")
        driver = webdriver.Firefox(options=options)
        driver.set_window_size(1100, 1400)
    else:
        from selenium.webdriver.chrome.service import Service

        missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
        assert not missing, (f"{' and '.join(missing)} missing: apt-get install chromium "
                             "chromium-driver (what .ci/run does)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1100,1400"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout=60):
    """Until condition(driver) holds; an element the page replaced while it was read (a clip
    arriving) is read again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, ignored_exceptions=(
        StaleElementReferenceException,)).until(lambda d: condition(d))


@pytest.mark.slow
def test_the_page_plays_a_typed_seed_morphs_and_survives_a_bad_seed(browser, server,
                                                                      export_folder, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def css(selector):
        return browser.find_elements(By.CSS_SELECTOR, selector)

    def generate(seeds):
        box = css("#seeds")[0]
        box.clear()
        box.send_keys(seeds)
        css("#generate")[0].click()

    browser.get(server)
    wait_for(browser, lambda d: css("body[data-ready]"))
    assert "stage" in css("#facts")[0].text
    # a typed seed: the WAV the page offers is play.py --generate's for that seed
    generate("5")
    wait_for(browser, lambda d: css('.clip[data-seed="5"] a.download'))
    link = css('.clip[data-seed="5"] a.download')[0]
    name, expected = played(export_folder, 5, tmp_path)
    assert link.get_attribute("download") == name
    assert get(link.get_attribute("href"))[2] == expected
    assert css('.clip[data-seed="5"] canvas.spectrogram')[0].get_attribute("width") != "0"
    css('.clip[data-seed="5"] button.keep')[0].click()
    generate("9")
    wait_for(browser, lambda d: css('.clip[data-seed="9"] button.keep'))
    css('.clip[data-seed="9"] button.keep')[0].click()
    assert [e.get_attribute("data-seed") for e in css("#kept .kept")] == ["5", "9"]
    # the morph slider: a move brings a new clip between the two kept seeds
    slider = css("#morph-t")[0]
    slider.click()
    slider.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: css("#morph-clip audio"))
    source = css("#morph-clip audio")[0].get_attribute("src")
    assert "a=5" in source and "b=9" in source and "t=0.5" in source
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    moved = wait_for(browser, lambda d: (
        src := css("#morph-clip audio")[0].get_attribute("src")) != source and src)
    assert get(moved)[0] == 200
    # a bad seed: a message on the page, and the page still works
    generate("-4")
    wait_for(browser, lambda d: "out of range" in css("#message")[0].text)
    assert "error" in css("#message")[0].get_attribute("class")
    generate("7")
    wait_for(browser, lambda d: css('.clip[data-seed="7"]'))
    assert "error" not in css("#message")[0].get_attribute("class")
    # a long walk through the kept seeds
    walk_seconds = css("#walk-seconds")[0]
    walk_seconds.clear()
    walk_seconds.send_keys("0.25")
    css("#walk")[0].click()
    wait_for(browser, lambda d: css("#walk-clip audio"))
    assert get(css("#walk-clip audio")[0].get_attribute("src"))[2][:4] == b"RIFF"


@pytest.mark.slow
def test_the_page_asks_for_a_label_at_a_strength(browser, labelled_server, labelled_export,
                                                 tmp_path):
    """The style row appears for a conditional export, and its label and strength reach the
    clip: the WAV offered is play.py --generate --label --label_strength's."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def css(selector):
        return browser.find_elements(By.CSS_SELECTOR, selector)

    browser.get(labelled_server)
    wait_for(browser, lambda d: css("body[data-ready]"))
    assert css("#label-row")[0].is_displayed()
    label = Select(css("#label")[0])
    assert [option.text for option in label.options] == LABELS
    label.select_by_visible_text("strings")
    for box, value in (("#strength", "2"), ("#seeds", "5")):
        css(box)[0].clear()
        css(box)[0].send_keys(value)
    css("#generate")[0].click()
    wait_for(browser, lambda d: css('.clip[data-seed="5"] a.download'))
    link = css('.clip[data-seed="5"] a.download')[0]
    name, expected = played(labelled_export, 5, tmp_path, "--label", "strings",
                            "--label_strength", "2")
    assert link.get_attribute("download") == name and "_strings_strength2_" in name
    assert get(link.get_attribute("href"))[2] == expected
