"""Run lapse's features, training and batch scoring on a Dask cluster with the single-machine code."""
