"""Fetch freely licensed real music from Debian packages, for benchmarks and training runs.

What: the soundtracks that free games ship in Debian's archive, taken from each package's music
folder only (no sound effects, voices or jingles from other folders). Each package goes to its
own folder under OUT and keeps the package's subfolders, so the result is a nested library:

    OUT/supertux/forest/forest.ogg, OUT/hedgewars/Castle.ogg, ...

From where: the Debian archive, through `apt-get download <pkg>=<version>` (which checks the
archive's signatures), or, where apt-get is missing or fails, over HTTP from the pool path
that `apt-cache show` gives (or the pinned Debian 12 "bookworm" one below), checked against
the package's SHA256. The .deb is read with `dpkg-deb --fsys-tarfile` (or parsed in Python
where dpkg-deb is missing) and only the music files are written.

Under which licences: each file's licence and copyright line are read from the package's own
/usr/share/doc/<pkg>/copyright (machine-readable Files: stanzas, the last match winning, as
Debian's format says; wesnoth's file is prose, so its statement is checked verbatim). A file
whose licence is not a free one (CC0, CC-BY, CC-BY-SA, GPL, LGPL, ...; nothing NC or ND) is
not kept. By default (93 files, 4.0 hours, Ogg Vorbis stereo, 44.1 kHz but for two files
of supertux at 48 kHz):

    supertux      supertux-data      GPL-2+  "Marek Moeckel <wansti@gmx.de>"
    freedroidrpg  freedroidrpg-data  GPL-2+  (the FreedroidRPG authors, Files: *)
    hedgewars     hedgewars-data     GPL-2   (Andrey Korotaev et al., Files: *)

and on request wesnoth (GPL-2+; its silence.ogg left out), hyperrogue (CC-BY-SA-3.0, one
composer per file) and warzone2100 (Opus; GPL-2+ in Debian's file, CC-BY-SA-3.0 or GPL-2+ in
upstream's license.txt).

OUT/LICENSES.md lists per package the Debian version, source and pool URL, the licences and
copyright holders as stated, and per file its licence, copyright line and the upstream credit
where the package names one; OUT/licenses/ keeps each package's copyright file, which holds
the full licence texts; OUT/.fetched/<name>.json records what was fetched.
Point --data_dir at OUT (the loader reads subfolders and skips LICENSES.md and licenses/ as
not audio) or at one package's folder, e.g. OUT/hedgewars.

Nothing goes into the repository: the default OUT is ~/.cache/pagan-music, and an OUT inside
a git work tree is refused. The script is idempotent: a package whose files are all there at
the same Debian version is skipped. It prints one line per package and a total (files, and
hours of audio where soundfile is importable, else bytes). Standard library only.

    python3 bench/fetch_music.py [OUT] [--packages supertux hedgewars ...|all]
"""

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

DEFAULT_OUT = "~/.cache/pagan-music"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
AUDIO_EXTENSIONS = (".ogg", ".oga", ".opus", ".flac", ".wav", ".mp3")
NOTE_NAMES = ("credits.txt", "album.json", "license.txt")
STAMPS = ".fetched"  # OUT/.fetched/<name>.json: what was fetched, so music folders hold only audio
STAMP_FORMAT = 1  # raise when the stamp's fields change: older stamps then fetch again
CHUNK = 1 << 20


@dataclass(frozen=True)
class Package:
    """One Debian package and where its music is, pinned to Debian 12 (bookworm)."""

    name: str  # folder under OUT
    deb: str  # binary package
    source: str  # source package
    music_dir: str  # folder of the music inside the .deb
    source_dir: str  # the same folder as the copyright file's Files: patterns name it
    version: str  # used where apt-cache is missing
    pool_path: str
    sha256: str
    hours: float  # for --help only
    statement: str = ""  # a prose copyright file: the licence statement to find verbatim
    license: str = ""  # ... and the licence and copyright line it gives
    holder: str = ""
    exclude: tuple = ()  # files of the music folder that are not music


# The packages, pinned to Debian 12 (bookworm): a data table beside this script.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "music_packages.json")) as f:
    PACKAGES = {row["name"]: Package(**dict(row, exclude=tuple(row.get("exclude", ()))))
                for row in json.load(f)}
DEFAULT_PACKAGES = ("supertux", "freedroidrpg", "hedgewars")

FREE_LICENSE = re.compile(
    r"(CC0-1\.0|CC-BY(-SA)?-[1-4]\.0\+?|A?L?GPL-[1-3](\.[01])?\+?|GFDL-1\.[23]\+?|"
    r"public-domain|Expat|MIT|BSD-[234]-clause|zlib|Artistic-2\.0)", re.IGNORECASE)


class FetchError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


# ---------------------------------------------------------------- where the package comes from


def run(command, **kwargs):
    """subprocess.run with text output captured; None where the program is not installed."""
    try:
        return subprocess.run(command, check=False, capture_output=True, text=True,
                              **kwargs)
    except FileNotFoundError:
        return None


def apt_fields(deb):
    """The candidate's fields from `apt-cache show`, or {} where apt-cache has none."""
    result = run(["apt-cache", "show", "--no-all-versions", deb])
    if result is None or result.returncode != 0:
        return {}
    fields = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith(" "):
            fields.setdefault(key, value.strip())
    return fields


def resolve(package):
    """Version, source package, pool path and SHA256: apt's candidate, else the pinned one."""
    fields = apt_fields(package.deb)
    if "Version" not in fields or "Filename" not in fields:
        return {"version": package.version, "source": package.source,
                "pool_path": package.pool_path, "sha256": package.sha256}
    source = fields.get("Source", package.deb).split()[0]
    return {"version": fields["Version"], "source": source, "pool_path": fields["Filename"],
            "sha256": fields.get("SHA256", "")}


def apt_download(package, info, folder):
    """The .deb through `apt-get download`, or None with the reason it failed."""
    result = run(["apt-get", "download", f"{package.deb}={info['version']}"], cwd=folder)
    if result is None:
        return None, "apt-get is not installed"
    debs = [name for name in os.listdir(folder) if name.endswith(".deb")]
    if result.returncode != 0 or len(debs) != 1:
        last = (result.stderr.strip().splitlines() or ["no .deb written"])[-1]
        return None, f"apt-get download failed ({last})"
    return os.path.join(folder, debs[0]), ""


def http_download(url, path, sha256):
    """Stream url to path, checking its SHA256 where one is known."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if sha256 and digest.hexdigest() != sha256:
        raise FetchError(f"{url}: SHA256 {digest.hexdigest()} is not the archive's {sha256}; "
                         "run apt-get update or retry")


def download(package, info, folder, mirror, use_apt):
    """The package's .deb in folder: apt-get download, else HTTP from the pool."""
    reason = "--no-apt given"
    if use_apt:
        path, reason = apt_download(package, info, folder)
        if path:
            return path
    url = f"{mirror.rstrip('/')}/{info['pool_path']}"
    path = os.path.join(folder, posixpath.basename(info["pool_path"]))
    try:
        http_download(url, path, info["sha256"])
    except (urllib.error.URLError, OSError) as error:
        detail = getattr(error, "reason", error)
        raise FetchError(f"cannot download {package.deb}: {reason}, and {url} is unreachable "
                         f"({detail}); this needs apt or access to a Debian mirror") from None
    return path


# ---------------------------------------------------------------- reading the .deb


def seek_data_tar(handle, path):
    """Move handle (a .deb, an ar archive) to its data.tar member, without dpkg-deb."""
    if handle.read(8) != b"!<arch>\n":
        raise FetchError(f"{path} is not a Debian package")
    while header := handle.read(60):
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise FetchError(f"{path}: {name} needs dpkg-deb (zstd); apt-get install dpkg")
            return
        handle.seek(size + size % 2, os.SEEK_CUR)
    raise FetchError(f"{path} has no data.tar member")


@contextlib.contextmanager
def data_tar(path):
    """The package's files as a tar stream: through dpkg-deb where installed, else Python."""
    if shutil.which("dpkg-deb"):
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", path], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as process:
            with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
                yield tar
            while process.stdout.read(CHUNK):  # the tar's end padding: let dpkg-deb finish
                pass
        if process.returncode:
            raise FetchError(f"dpkg-deb cannot read {path} (exit code {process.returncode})")
        return
    with open(path, "rb") as handle:
        seek_data_tar(handle, path)
        with tarfile.open(fileobj=handle, mode="r|*") as tar:
            yield tar


def is_music(relpath):
    return relpath.lower().endswith(AUDIO_EXTENSIONS)


def save_member(tar, member, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tar.extractfile(member) as source, open(path, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def extract(package, deb_path, staging):
    """Write the music files under staging; return (copyright text, {relpath: note text})."""
    try:
        with data_tar(deb_path) as tar:
            copyright_text, notes = read_members(package, tar, staging)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise FetchError(f"cannot unpack {deb_path}: {error}") from None
    if copyright_text is None:
        raise FetchError(f"{package.deb} has no /usr/share/doc/{package.deb}/copyright: "
                         "its licence cannot be checked")
    return copyright_text, notes


def read_members(package, tar, staging):
    """One pass over the tar: music to staging, the copyright file and upstream notes read."""
    copyright_name = f"usr/share/doc/{package.deb}/copyright"
    prefix = package.music_dir + "/"
    copyright_text, notes = None, {}
    for member in tar:
        name = member.name.removeprefix("./")
        relpath = name[len(prefix):] if name.startswith(prefix) else None
        if not member.isfile():
            continue
        if name == copyright_name:
            copyright_text = tar.extractfile(member).read().decode("utf-8", "replace")
        elif relpath and is_music(relpath) and relpath not in package.exclude:
            save_member(tar, member, os.path.join(staging, relpath))
        elif relpath and posixpath.basename(relpath).lower() in NOTE_NAMES:
            notes[relpath] = tar.extractfile(member).read().decode("utf-8", "replace")
    return copyright_text, notes


# ---------------------------------------------------------------- licences


def paragraphs(text):
    """The stanzas of a machine-readable copyright file, as {lowercased field: value}."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            stanzas.append(fields)
    return stanzas


def is_free(license_name):
    """True when every part of each 'and' is a free licence, for at least one 'or' choice."""
    choices = re.split(r"\s+or\s+", license_name.strip())
    return any(all(FREE_LICENSE.fullmatch(part) for part in re.split(r"\s+and\s+|,\s*", choice))
               for choice in choices)


def holder_line(copyright_field):
    lines = [line.strip() for line in copyright_field.splitlines() if line.strip()]
    return "; ".join(lines)


def dep5_licences(package, text, relpaths):
    """{relpath: (licence, copyright, Files: field)}: the last stanza that matches (DEP-5)."""
    stanzas = [s for s in paragraphs(text) if "files" in s]
    found = {}
    for relpath in relpaths:
        source_path = posixpath.join(package.source_dir, relpath)
        matches = [s for s in stanzas
                   if any(fnmatch.fnmatchcase(source_path, p) for p in s["files"].split())]
        if not matches:
            raise FetchError(f"{package.deb}: no Files: stanza of its copyright file covers "
                             f"{source_path}")
        stanza = matches[-1]
        found[relpath] = (stanza.get("license", "").splitlines()[0].strip(),
                          holder_line(stanza.get("copyright", "")),
                          " ".join(stanza["files"].split()))
    return found


def prose_licences(package, text, relpaths):
    """{relpath: (licence, copyright, note)} from a prose copyright file's checked words."""
    flat = " ".join(text.split())
    for quote in (package.statement, package.holder):
        if " ".join(quote.split()) not in flat:
            raise FetchError(f"/usr/share/doc/{package.deb}/copyright no longer says "
                             f"{quote[:60]!r}...; check its licence by hand")
    return {relpath: (package.license, package.holder, "(prose file, whole package)")
            for relpath in relpaths}


def licences(package, text, relpaths):
    """{relpath: (licence, copyright, Files: field)} of each music file."""
    if package.statement:
        return prose_licences(package, text, relpaths)
    if text.startswith("Format:"):
        return dep5_licences(package, text, relpaths)
    raise FetchError(f"/usr/share/doc/{package.deb}/copyright is not machine-readable; "
                     "give the package a statement to check")


# ---------------------------------------------------------------- upstream credits


def credits_txt(folder, text):
    """{lowercased relpath: author} from hedgewars-style 'File.ogg=Author' lines."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {posixpath.join(folder, name.strip()).lower(): who.strip() for name, who in pairs}


def album_json(folder, text):
    """{lowercased relpath: 'author, album (year)'} from a warzone2100-style album.json."""
    album = json.loads(text)
    title = f"{album.get('title', '')} ({album.get('date', '')})"
    return {posixpath.join(folder, track["filename"]).lower():
            f"{track.get('author', album.get('author', ''))}, {title}"
            for track in album.get("tracks", [])}


def license_header(text):
    """A license.txt's opening statement, up to its first full licence text."""
    head = re.split(r"\n\s*\[[A-Z]{2}\]\s*\n", text, maxsplit=1)[0]
    return "\n".join(line.rstrip() for line in head.strip().splitlines())


def upstream_credits(notes):
    """({lowercased relpath: credit}, {relpath: licence statement}) from the music folder."""
    credits, statements = {}, {}
    for relpath, text in sorted(notes.items()):
        folder, name = posixpath.split(relpath)
        if name.lower() == "credits.txt":
            credits.update(credits_txt(folder, text))
        elif name.lower() == "album.json":
            credits.update(album_json(folder, text))
        else:
            statements[relpath] = license_header(text)
    return credits, statements


# ---------------------------------------------------------------- one package


def walk_files(folder):
    """Relative paths (with /) of the files under folder, sorted."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(found)


def stamp_path(out, name):
    return os.path.join(out, STAMPS, f"{name}.json")


def read_stamp(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def up_to_date(stamp, version, folder):
    """True when the stamp is this version and every file it lists is there, at its size."""
    if not stamp or stamp.get("format") != STAMP_FORMAT or stamp.get("version") != version:
        return False
    for entry in stamp["files"]:
        path = os.path.join(folder, entry["path"])
        if not os.path.isfile(path) or os.path.getsize(path) != entry["bytes"]:
            return False
    return True


def keep_free(staging, found, credits):
    """The stamp's file entries; files under a licence that is not free are deleted."""
    kept, dropped = [], []
    for relpath, (license_name, holder, files_field) in sorted(found.items()):
        path = os.path.join(staging, relpath)
        if not is_free(license_name):
            os.remove(path)
            dropped.append({"path": relpath, "license": license_name})
            continue
        kept.append({"path": relpath, "bytes": os.path.getsize(path), "license": license_name,
                     "copyright": holder, "files_stanza": files_field,
                     "credit": credits.get(relpath.lower(), "")})
    return kept, dropped


def fetch(package, info, out, mirror, use_apt):
    """Download, extract and check one package into OUT/<name>; return its stamp."""
    target = os.path.join(out, package.name)
    staging = os.path.join(out, f".partial-{package.name}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        stamp = unpack(package, info, staging, mirror, use_apt)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    os.makedirs(os.path.join(out, STAMPS), exist_ok=True)
    with open(stamp_path(out, package.name), "w") as handle:
        json.dump(stamp, handle, indent=1)
    return stamp


def unpack(package, info, staging, mirror, use_apt):
    """Download the .deb and keep its free music in staging; return the package's stamp."""
    with tempfile.TemporaryDirectory(prefix="fetch-music-") as folder:
        deb_path = download(package, info, folder, mirror, use_apt)
        copyright_text, notes = extract(package, deb_path, staging)
    credits, statements = upstream_credits(notes)
    found = licences(package, copyright_text, walk_files(staging))
    kept, dropped = keep_free(staging, found, credits)
    if not kept:
        raise FetchError(f"{package.deb}: no music under a free licence in {package.music_dir}")
    save_copyright(os.path.dirname(staging), package, copyright_text)
    return {"format": STAMP_FORMAT, "package": package.name, "deb": package.deb, **info,
            "url": f"{mirror.rstrip('/')}/{info['pool_path']}", "music_dir": package.music_dir,
            "files": kept, "not_free": dropped, "upstream_statements": statements}


def save_copyright(out, package, text):
    folder = os.path.join(out, "licenses")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{package.deb}.copyright"), "w") as handle:
        handle.write(text)


# ---------------------------------------------------------------- LICENSES.md and totals


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def file_table(stamp, one_holder):
    """Per file: licence, the Files: stanza it falls under, copyright line, upstream credit."""
    rows = ["| file | licence | Files: stanza | copyright (Debian copyright file) | upstream "
            + "credit |", "| --- | --- | --- | --- | --- |"]
    for entry in stamp["files"]:
        holder = "as above" if one_holder else entry["copyright"]
        rows.append(f"| {stamp['package']}/{cell(entry['path'])} | {cell(entry['license'])} "
                    f"| {cell(entry['files_stanza'])} | {cell(holder)} "
                    f"| {cell(entry['credit'])} |")
    return "\n".join(rows)


def package_section(stamp):
    """The LICENSES.md section of one package."""
    licence_names = sorted({entry["license"] for entry in stamp["files"]})
    holders = sorted({entry["copyright"] for entry in stamp["files"]})
    lines = [f"## {stamp['package']}: Debian package {stamp['deb']} {stamp['version']}", "",
             f"- Source: Debian source package `{stamp['source']}`, {stamp['url']}"
             + (f" (SHA256 {stamp['sha256']})" if stamp.get("sha256") else ""),
             f"- Music taken from `/{stamp['music_dir']}`: {len(stamp['files'])} files",
             (f"- Licence of the music, from /usr/share/doc/{stamp['deb']}/copyright "
              f"(kept in licenses/{stamp['deb']}.copyright): {', '.join(licence_names)}"),
             "- Copyright as stated there: " + " / ".join(holders)]
    for entry in stamp["not_free"]:
        lines.append(f"- Left out, licence not free: {entry['path']} ({entry['license']})")
    for relpath, statement in sorted(stamp["upstream_statements"].items()):
        quoted = "\n".join("> " + line for line in statement.splitlines())
        lines += ["", f"Upstream's {relpath} (shipped in the package, not taken) says:", "",
                  quoted]
    lines += ["", file_table(stamp, one_holder=len(holders) == 1)]
    return "\n".join(lines) + "\n"


def write_licenses(out):
    """OUT/LICENSES.md from the stamps of every package fetched into OUT so far."""
    folder = os.path.join(out, STAMPS)
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    stamps = [stamp for name in names
              if (stamp := read_stamp(os.path.join(folder, name)))
              and stamp.get("format") == STAMP_FORMAT]
    header = ("# Licences of the music in this folder\n\n"
              "Fetched by bench/fetch_music.py from Debian's archive; not part of any "
              "repository. Each package's full copyright file, with the licence texts, is in "
              "licenses/. Attribution and share-alike terms apply to anything made from "
              "these files.\n")
    with open(os.path.join(out, "LICENSES.md"), "w") as handle:
        handle.write("\n".join([header] + [package_section(stamp) for stamp in stamps]))


def seconds_of(paths):
    """Total seconds of audio, or None where soundfile cannot be imported."""
    try:
        import soundfile
    except ImportError:
        return None
    total = 0.0
    for path in paths:
        try:
            total += soundfile.info(path).duration
        except RuntimeError as error:
            print(f"  cannot read {path}: {error}", file=sys.stderr)
    return total


def amount(paths):
    seconds = seconds_of(paths)
    if seconds is not None:
        return f"{seconds / 3600:.2f} h"
    return f"{sum(os.path.getsize(path) for path in paths) / 1e6:.1f} MB"


def report(stamp, out, state):
    """Print the package's line; return its file paths."""
    paths = [os.path.join(out, stamp["package"], entry["path"]) for entry in stamp["files"]]
    licence_names = ", ".join(sorted({entry["license"] for entry in stamp["files"]}))
    print(f"{stamp['package']}: {len(paths)} files, {amount(paths)}, {licence_names} "
          f"({stamp['deb']} {stamp['version']}, {state})", flush=True)
    return paths


# ---------------------------------------------------------------- command line


def inside_git_tree(path):
    """The git work tree that path is in, or None."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def check_out(out):
    """The absolute OUT folder, created; FetchError for one that cannot hold the library."""
    out = os.path.abspath(os.path.expanduser(out))
    repository = inside_git_tree(out)
    if repository:
        raise FetchError(f"{out} is inside the git repository {repository}: music must never "
                         "be committed, so pick a folder outside it (default "
                         f"{DEFAULT_OUT})")
    if os.path.exists(out) and not os.path.isdir(out):
        raise FetchError(f"{out} is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create {out}: {error.strerror}") from None
    if not os.access(out, os.W_OK):
        raise FetchError(f"{out} is not writable")
    return out


def chosen(names):
    """The Package entries named on the command line (commas or spaces; 'all' for every one)."""
    names = [name for item in names for name in item.split(",") if name]
    if names == ["all"]:
        return list(PACKAGES.values())
    unknown = [name for name in names if name not in PACKAGES]
    if unknown:
        raise FetchError(f"unknown package {unknown[0]!r}: choose from "
                         f"{', '.join(PACKAGES)} or all")
    return [PACKAGES[name] for name in dict.fromkeys(names)]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def parse_args(argv):
    table = "\n".join(f"  {p.name:<13} {p.deb:<19} {p.version:<11} about {p.hours} h"
                      for p in PACKAGES.values())
    parser = argparse.ArgumentParser(
        prog="fetch_music.py", formatter_class=HelpFormatter,
        description="Fetch freely licensed game soundtracks from Debian packages into a "
                    "nested folder outside the repository, with LICENSES.md.",
        epilog=f"packages (name, Debian package, bookworm version, music):\n{table}")
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT,
                        help="output folder (one subfolder per package)")
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES),
                        metavar="NAME", help="packages to fetch, or 'all'")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR,
                        help="Debian mirror for the HTTP fallback")
    parser.add_argument("--no-apt", action="store_true",
                        help="download over HTTP even where apt-get works")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        packages = chosen(args.packages)
        out = check_out(args.out)
        paths = []
        for package in packages:
            info = resolve(package)
            stamp = read_stamp(stamp_path(out, package.name))
            state = "already there"
            if not up_to_date(stamp, info["version"], os.path.join(out, package.name)):
                stamp, state = fetch(package, info, out, args.mirror, not args.no_apt), "fetched"
            paths += report(stamp, out, state)
        write_licenses(out)
    except FetchError as error:
        print(f"fetch_music: {error}", file=sys.stderr)
        return 2
    print(f"total: {len(paths)} files, {amount(paths)} in {out} (licences: "
          f"{os.path.join(out, 'LICENSES.md')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
