"""`python -m serving.server_main serve ...`: BentoML's command line, with this server's own metrics folder.

BentoML keeps the Prometheus counts of a server's processes in files under
`$BENTOML_HOME/prometheus_multiproc_dir`: one folder for every server of the machine, which a starting
server empties. Two services on one host (or a test server next to a benchmark's) wiped and mixed each
other's /metrics. `serving.launcher` starts servers through this module with LAPSE_METRICS_DIR, a folder
per port; without it this is plain `bentoml`. A Bento served by `bentoml serve` in its own container keeps
BentoML's folder: it is the only server there.
"""

from __future__ import annotations

import os
import shutil

from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml_cli.cli import cli

from serving.launcher import METRICS_DIR_ENV


def main() -> None:
    folder = os.environ.get(METRICS_DIR_ENV)
    if folder:
        BentoMLContainer.prometheus_multiproc_dir.set(folder)
    try:
        cli()
    finally:  # the counts die with the server (BentoML empties the folder at start anyway)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
