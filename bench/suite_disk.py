"""How much disk the test suite takes at its peak: it runs the README's test command (or the
pytest arguments given) and samples the space used on the file system of the temporary
folder, where pytest puts every test's checkpoints, twice a second.

CI once failed with "No space left on device" part-way through the suite (a stage-1
checkpoint is 394 MB); this is the figure to keep below the free space of a CI machine.
Run it alone: another process writing to the same disk counts too.

    python bench/suite_disk.py                    # the whole suite
    python bench/suite_disk.py -m "not slow"      # the fast lane
"""

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def folder_sizes(folder):
    """[(bytes, test folder)], the largest first, of pytest's temporary folders under folder
    (<base>/pytest-<n>/[popen-gw<k>/]<test>), a hard-linked file counted once."""
    base = os.path.join(folder, f"pytest-of-{getpass.getuser()}")
    sizes, seen = {}, set()
    for path, _, files in os.walk(base):
        parts = os.path.relpath(path, base).split(os.sep)
        test = os.sep.join(parts[:3] if len(parts) > 1 and parts[1].startswith("popen-")
                           else parts[:2])
        for name in files:
            try:
                status = os.lstat(os.path.join(path, name))
            except OSError:  # removed as we walk
                continue
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                sizes[test] = sizes.get(test, 0) + status.st_blocks * 512
    return sorted(((size, name) for name, size in sizes.items()), reverse=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # Every other argument goes to pytest, after `-q tests`.
    _, pytest_args = parser.parse_known_args()
    folder = tempfile.gettempdir()
    start = shutil.disk_usage(folder).used
    peak = [0, 0.0]  # bytes above the start, seconds into the run
    done = threading.Event()
    began = time.monotonic()

    largest = []  # the test folders that held the most at the last walk near the peak
    walked = [-1]  # the bytes above the start at that walk

    def sample():
        while not done.wait(0.5):
            grown = shutil.disk_usage(folder).used - start
            if grown > peak[0]:
                if grown > walked[0] + 50e6:  # a walk takes time: again only 50 MB higher
                    largest[:], walked[0] = folder_sizes(folder)[:6], grown
                peak[:] = grown, time.monotonic() - began

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests", *pytest_args],
                            check=False, cwd=ROOT)
    done.set()
    sampler.join()
    print(f"peak disk use on the file system of {folder}: {peak[0] / 1e9:.2f} GB above the "
          f"start, {peak[1]:.0f} s into the run ({time.monotonic() - began:.0f} s in all)")
    for size, name in largest:
        print(f"  {size / 1e9:5.2f} GB  {name}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
