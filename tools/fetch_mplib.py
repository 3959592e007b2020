#!/usr/bin/env python3
"""Fetch the pinned micropython-lib packages into build/lib.

micropython-lib packages on the package index are bare sdists that pip cannot
install. This reads the index URL from pip's own configuration (or pip's built-in
default), follows the file link of the pinned version from tools/mplib.lock,
checks its sha256 and unpacks the named module into build/lib. No host name is
written in this repository: the index comes from pip.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pip_index_url():
    for key in ("global.index-url", "install.index-url"):
        try:
            out = subprocess.run([sys.executable, "-m", "pip", "config", "get", key],
                                 capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            out = ""
        if out:
            return out.rstrip("/")
    env = os.environ.get("PIP_INDEX_URL")
    if env:
        return env.rstrip("/")
    from pip._internal.models.index import PyPI  # pip's built-in default
    return PyPI.simple_url.rstrip("/")


def read_lock(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            project, filename, sha, module = line.split()
            rows.append((project, filename, sha, module))
    return rows


def find_file_url(index, project, filename):
    norm = project.lower().replace("_", "-").replace(".", "-")
    req = urllib.request.Request(index + "/" + norm + "/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = json.load(r)
    for f in data.get("files", []):
        if f["filename"] == filename:
            return f["url"]
    raise SystemExit("fetch_mplib: %s not listed for %s on the index" % (filename, project))


def main():
    out_dir = os.path.join(ROOT, "build", "lib")
    cache = os.path.join(ROOT, "build", "cache")
    os.makedirs(cache, exist_ok=True)
    index = None
    for project, filename, sha, module in read_lock(os.path.join(HERE, "mplib.lock")):
        dest = os.path.join(out_dir, module)
        cached = os.path.join(cache, filename)
        if not os.path.exists(cached):
            index = index or pip_index_url()
            url = find_file_url(index, project, filename)
            with urllib.request.urlopen(url, timeout=60) as r:
                blob = r.read()
            with open(cached + ".part", "wb") as f:
                f.write(blob)
            os.replace(cached + ".part", cached)
        with open(cached, "rb") as f:
            blob = f.read()
        got = hashlib.sha256(blob).hexdigest()
        if got != sha:
            os.remove(cached)
            raise SystemExit("fetch_mplib: sha256 mismatch for %s: %s != %s" % (filename, got, sha))
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + module)), None)
            if member is None:
                raise SystemExit("fetch_mplib: %s has no %s" % (filename, module))
            data = tar.extractfile(member).read()
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)
        print("fetch_mplib: %s -> build/lib/%s (sha256 ok)" % (filename, module))


if __name__ == "__main__":
    main()
