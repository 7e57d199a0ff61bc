"""The report as a PDF: Debian's chromium prints report.html (headless), when it is installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from features.atomic import atomic_path
from reporting.files import FILE_MODE

CHROMIUM = Path("/usr/bin/chromium")
PDF_FILE = "report.pdf"
PRINT_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--no-pdf-header-footer")


class PdfUnavailable(RuntimeError):
    """No PDF could be printed (no chromium, or chromium failed); the message says why."""


def write_pdf(html_path: str | Path, chromium: str | Path = CHROMIUM, timeout: float = 120) -> Path:
    """Print report.html to report.pdf beside it (mode 0644) and return its path.

    The PDF is printed to a temporary file and renamed over any earlier one only when chromium succeeded.
    Raises PdfUnavailable when chromium is missing or fails.
    """
    html_path, chromium = Path(html_path), Path(chromium)
    if not chromium.is_file():
        raise PdfUnavailable(f"no PDF written: {chromium} is not installed (apt-get install chromium); "
                             f"{html_path.name} is written")
    target = html_path.with_name(PDF_FILE)
    with atomic_path(target) as tmp:
        command = [str(chromium), *PRINT_ARGS, f"--print-to-pdf={tmp}", html_path.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PdfUnavailable(f"no PDF written: {chromium} did not finish printing within {timeout:g} s") from None
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise PdfUnavailable(f"no PDF written: {chromium} exited {done.returncode} ({tail[0]})")
        os.chmod(tmp, FILE_MODE)
    return target


def write_pdf_or_reason(html_path: str | Path, chromium: str | Path = CHROMIUM) -> str:
    """For the command line: the PDF's path when printed, else one line saying why it was skipped."""
    try:
        return str(write_pdf(html_path, chromium))
    except PdfUnavailable as exc:
        return f"lapse report: {exc}"
