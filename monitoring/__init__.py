"""Monitoring a served model: drift of the inputs against the training reference (PSI) and realized performance."""
