"""Regenerate docs/screenshots/: HTML reports of the command line rendered by a headless Chromium,
the plots those reports embed, and the figures the tutorials save.

A developer tool, not part of the package: it needs a Chromium (``apt-get install chromium``) and
Pillow (which matplotlib already brings).  Without a browser it still writes the reports, the
embedded plots and the tutorial figures, and says that the page screenshots were skipped.

Usage (from the repository root)::

    PYTHONPATH=src python tools/screenshot_report.py            # everything into docs/screenshots/
    PYTHONPATH=src python tools/screenshot_report.py --out /tmp/shots --keep-html
    PYTHONPATH=src python tools/screenshot_report.py --page some_report.html --out /tmp/shots

Every PNG is downscaled and palette-quantised to stay under ``--max-kb`` (300 KB by default).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: (screenshot name, command-line arguments after ``glmmkit fit``); each writes --report
#: (the hospital report is the one whose embedded plots are also kept one by one: it has all four kinds)
EMBEDDED = {"report_glmm_hospital"}
REPORTS = [
    ("report_lmm_sleepstudy_profile",
     ["Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--confint", "profile", "--seed", "1"]),
    ("report_glmm_cbpp_profile",
     ["cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp", "--family", "binomial",
      "--confint", "profile", "--seed", "1"]),
    ("report_glmm_exacerbations_nb_bootstrap",
     ["count ~ treated + smoker + offset(log(years)) + (1 | clinic)", "--data", "exacerbations",
      "--family", "negative_binomial", "--confint", "bootstrap", "--nboot", "200", "--seed", "2"]),
    ("report_glmm_hospital",
     ["infection ~ I(age - 60) + sex + teaching + (1 | hospital)", "--data", "hospital", "--family", "binomial",
      "--seed", "1"]),
]

#: tutorial pages whose python blocks save figures (run in a scratch directory, as tests/test_docs.py does)
TUTORIALS = ["hospital_registry", "overdispersed_counts", "repeated_measures", "swine_nested"]


def find_browser() -> str | None:
    """The path of a headless-capable Chromium, or None when none is installed.

    Returns
    -------
    str or None
        Executable path.
    """
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def shrink_png(path: Path, max_width: int = 1000, max_kb: int = 300) -> Path:
    """Downscale (to ``max_width`` pixels wide) and palette-quantise a PNG until it is under ``max_kb``.

    Parameters
    ----------
    path : Path
        PNG rewritten in place.
    max_width : int, default 1000
        Widest the image may be.
    max_kb : int, default 300
        Size limit in kilobytes.

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image

    img = Image.open(path).convert("RGB")
    width = min(max_width, img.width)
    while True:
        scaled = img if width == img.width else img.resize((width, round(img.height * width / img.width)),
                                                           Image.LANCZOS)
        scaled.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_kb * 1024 or width < 300:
            return path
        width = int(width * 0.85)


def _trim_bottom(path: Path) -> None:
    """Cut the blank rows below the page's last content (the window is taller than the page)."""
    import numpy as np
    from PIL import Image

    img = Image.open(path).convert("RGB")
    px = np.asarray(img)
    nonwhite = np.nonzero((px < 250).any(axis=(1, 2)))[0]
    bottom = int(nonwhite[-1]) + 24 if nonwhite.size else img.height
    img.crop((0, 0, img.width, min(img.height, bottom))).save(path)


def page_height(html_path: Path, browser: str, width: int) -> int:
    """Height in CSS pixels of the rendered page (``document.body.scrollHeight``), from a dump of the DOM.

    Parameters
    ----------
    html_path : Path
        Page to measure.
    browser : str
        Chromium executable.
    width : int
        Window width the page is laid out at.

    Returns
    -------
    int
        Page height; 12000 when the browser does not report it.
    """
    probe = Path(tempfile.mkdtemp()) / "probe.html"
    text = html_path.read_text(encoding="utf-8")
    script = ("<script>window.onload=function(){var h=document.documentElement.scrollHeight;"
              "document.title='H'+h;}</script>")
    probe.write_text(text.replace("</body>", script + "</body>"), encoding="utf-8")
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},1000",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"<title>H(\d+)</title>", out.stdout)
    shutil.rmtree(probe.parent, ignore_errors=True)
    return int(m.group(1)) if m else 12000


def screenshot(html_path: Path, png_path: Path, browser: str, width: int = 1150, max_kb: int = 300) -> Path:
    """Render a whole HTML page to a PNG with headless Chromium (full page, not just the first screen).

    Parameters
    ----------
    html_path : Path
        Page to render.
    png_path : Path
        Where the screenshot goes.
    browser : str
        Chromium executable (see :func:`find_browser`).
    width : int, default 1150
        Window width in CSS pixels.
    max_kb : int, default 300
        Size limit of the PNG (downscaled until it fits).

    Returns
    -------
    Path
        ``png_path``.
    """
    height = page_height(html_path, browser, width) + 40
    png_path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--window-size={width},{height}",
                    f"--screenshot={png_path}", html_path.resolve().as_uri()],
                   capture_output=True, timeout=180, check=False)
    if not png_path.exists():
        raise RuntimeError(f"{browser} wrote no screenshot of {html_path}")
    _trim_bottom(png_path)
    return shrink_png(png_path, max_width=width, max_kb=max_kb)


def embedded_plots(html_path: Path, out_dir: Path, stem: str, max_kb: int = 300) -> list[Path]:
    """Write each PNG a report embeds (``data:`` URIs) to its own file, named after its caption.

    Parameters
    ----------
    html_path : Path
        A report written by ``fit.report`` or ``glmmkit fit --report``.
    out_dir : Path
        Folder for the PNGs.
    stem : str
        Prefix of their names.
    max_kb : int, default 300
        Size limit of each PNG.

    Returns
    -------
    list of Path
        The files written, in page order.
    """
    text = html_path.read_text(encoding="utf-8")
    found = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", text)
    paths = []
    for i, (alt, data) in enumerate(found, 1):
        slug = re.sub(r"[^a-z0-9]+", "_", alt.lower()).strip("_")[:40]
        path = out_dir / f"{stem}_plot{i}_{slug}.png"
        path.write_bytes(base64.b64decode(data))
        paths.append(shrink_png(path, max_kb=max_kb))
    return paths


def tutorial_figures(page: str, out_dir: Path, max_kb: int = 300) -> list[Path]:
    """Run a tutorial's python blocks in a scratch folder and keep the PNGs it saves.

    Parameters
    ----------
    page : str
        Tutorial name under docs/tutorials (without ``.md``).
    out_dir : Path
        Folder for the PNGs (named ``tutorial_<page>_<figure>.png``).
    max_kb : int, default 300
        Size limit of each PNG.

    Returns
    -------
    list of Path
        The figures kept.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / "tutorials" / f"{page}.md").read_text(),
                        re.S | re.M)
    scratch = Path(tempfile.mkdtemp())
    here = os.getcwd()
    os.chdir(scratch)
    try:
        ns = {"__name__": "__tutorial__"}
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, code in enumerate(blocks):
                exec(compile(code, f"{page}.md[block {i + 1}]", "exec"), ns)
    finally:
        os.chdir(here)
        plt.close("all")
    kept = []
    for png in sorted(scratch.glob("*.png")):
        dest = out_dir / f"tutorial_{page}_{png.name}"
        shutil.copy(png, dest)
        kept.append(shrink_png(dest, max_kb=max_kb))
    shutil.rmtree(scratch, ignore_errors=True)
    return kept


def main(argv=None) -> int:
    """Regenerate the screenshots (see the module docstring).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0, or 1 when a report could not be written.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--max-kb", type=int, default=300)
    ap.add_argument("--keep-html", action="store_true", help="keep the HTML reports beside the screenshots")
    ap.add_argument("--page", type=Path, action="append", help="only screenshot this HTML page (repeatable)")
    ap.add_argument("--all-plots", action="store_true", help="keep the embedded plots of every report")
    ap.add_argument("--no-tutorials", action="store_true", help="skip the tutorials' figures")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    browser = find_browser()
    if browser is None:
        print("no Chromium found (apt-get install chromium): page screenshots skipped", file=sys.stderr)
    if args.page:
        for page in args.page:
            if browser:
                print(screenshot(page, args.out / f"{page.stem}.png", browser, max_kb=args.max_kb))
        return 0
    from glmmkit import cli

    html_dir = args.out if args.keep_html else Path(tempfile.mkdtemp())
    status = 0
    for stem, fit_args in REPORTS:
        html_path = html_dir / f"{stem}.html"
        rc = cli.main(["fit", *fit_args, "--report", str(html_path), "--no-progress"])
        if rc != 0:
            print(f"glmmkit fit {' '.join(fit_args)} exited {rc}", file=sys.stderr)
            status = 1
            continue
        if browser:
            print(screenshot(html_path, args.out / f"{stem}.png", browser, max_kb=args.max_kb))
        if stem in EMBEDDED or args.all_plots:
            for p in embedded_plots(html_path, args.out, stem, max_kb=args.max_kb):
                print(p)
    if not args.no_tutorials:
        for page in TUTORIALS:
            for p in tutorial_figures(page, args.out, max_kb=args.max_kb):
                print(p)
    if not args.keep_html:
        shutil.rmtree(html_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
