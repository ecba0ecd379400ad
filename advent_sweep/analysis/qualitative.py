"""The report's qualitative section: lays out the prediction PNGs a sweep made at its end (no torch here).

``advent-sweep launch`` writes ``<sweep>/qualitative/`` (advent/qualitative.py): for a few fixed target-val
images, the image, its ground truth, the prediction of the best trial and of each method's best, and the best
model's entropy map, listed in ``qualitative.json``. This copies them beside report.html (as
``qualitative_<file>``) and returns the HTML grid, or a note saying why there are none.
"""

from __future__ import annotations

import html
import json
import posixpath
from pathlib import Path

from advent_sweep.analysis.results import SweepResults
from advent_sweep.storage import filesystem_and_path

FOLDER, MANIFEST, PREFIX = "qualitative", "qualitative.json", "qualitative_"


def qualitative_section(path: str | Path, results: SweepResults, out: Path) -> str:
    """The grid of images (rows) × image, ground truth, each model, entropy (columns), PNGs copied into ``out``."""
    if len(results.sweeps) != 1:
        return _note("No qualitative images: they are shown for one sweep folder at a time.")
    filesystem, root = filesystem_and_path(str(path).rstrip("/"))
    folder = posixpath.join(root, FOLDER)
    try:
        with filesystem.open_input_stream(posixpath.join(folder, MANIFEST)) as stream:
            manifest = json.loads(stream.read())
    except FileNotFoundError:
        return _note(f"No qualitative images: {FOLDER}/{MANIFEST} is not in the sweep folder (launch writes them when "
                     "a sweep ends, from the snapshots its trials kept).")
    width, height = manifest["size"]
    labels = [model["label"] for model in manifest["models"]]
    header = ["image", "ground truth", *labels, f"entropy ({manifest['entropy_of']})"]
    rows = []
    for image in manifest["images"]:
        names = [image["image"], image["truth"], *(image["predictions"].get(label) for label in labels), image.get("entropy")]
        rows.append("<tr>" + "".join(f"<td>{_copied(filesystem, folder, name, out, width, height)}</td>" for name in names) + "</tr>")
    models = "; ".join(f"{m['label']}: {m['snapshot']} (iteration {m['iteration']})" for m in manifest["models"])
    return (_note(f"The first {len(manifest['images'])} target-val images (the same in every report of this sweep), "
                  f"{width}×{height}; each model is a snapshot its trial kept: {models}.")
            + "<table class='qualitative'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
            + "".join(rows) + "</table>")


def _copied(filesystem, folder: str, name: str | None, out: Path, width: int, height: int) -> str:
    if name is None:
        return "–"
    with filesystem.open_input_stream(posixpath.join(folder, name)) as stream:
        (out / f"{PREFIX}{name}").write_bytes(stream.read())
    return f"<img src='{html.escape(PREFIX + name)}' width='{width}' height='{height}' alt='{html.escape(name)}'>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"
