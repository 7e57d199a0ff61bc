"""The --engine dask branches of `lapse features` and `lapse train` (the commands keep their local path)."""

from __future__ import annotations

import argparse
import sys

from config import LapseSettings
from engines.cluster import dask_client
from engines.features import cohort_labels, distributed_training_table
from engines.output import write_dataset
from engines.partitions import data_end_of, read_partitioned
from engines.training import run_dask_training
from features.io import RECORD, table_settings
from features.validate import ContractError

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def run_features(args: argparse.Namespace, settings: LapseSettings) -> int:
    """`lapse features --engine dask`: the training table per patient partition, written as a Parquet folder,
    with the run's settings (features, labels, the program's [events] table, [scale_out])."""
    # dask is an optional extra (lapse[dask]): imported only when the Dask engine runs.
    import dask
    import dask.dataframe as dd

    config, feature_config, label_config = settings.scale_out, settings.features, settings.labels
    try:
        with dask_client(args.scheduler, args.workers, config):
            cohort = read_partitioned(args.data, config=config, declared=feature_config.events)
            data_end = data_end_of(args.data, cohort)
            table = distributed_training_table(cohort, data_end, feature_config, label_config,
                                               feature_config.calendar, cohort_labels(args.data, cohort))
            write_dataset(table, args.out, attrs={RECORD: table_settings(settings, data_end)})
            written = dd.read_parquet(str(args.out), columns=["patient_id", "as_of_day", "dropout"])
            rows, patients, drops, by_day = dask.compute(
                written.shape[0], written["patient_id"].nunique(), written["dropout"].sum(),
                written.groupby("as_of_day")["dropout"].agg(["count", "sum"]))
    except ContractError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as exc:
        print(f"lapse features: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {args.out} (Parquet folder, {cohort.npartitions} partitions): {int(rows):,} snapshots of "
          f"{int(patients):,} patients (eligible and uncensored), {int(drops):,} dropouts, "
          f"{int(rows) - int(drops):,} retained")
    if not feature_config.calendar:
        for day, row in by_day.sort_index().iterrows():
            print(f"  day {int(day):>3}: {int(row['count']):>9,} snapshots, {int(row['sum']):>9,} dropouts")
    return EXIT_OK


def train_on_dask(args: argparse.Namespace, settings: LapseSettings):
    """`lapse train --engine dask`: features on the cluster, boosted trees by xgboost.dask, the same MLflow run."""
    with dask_client(args.scheduler, args.workers, settings.scale_out) as client:
        return run_dask_training(client, args.data, settings.training, settings.features, settings.labels,
                                 scale_out=settings.scale_out)
