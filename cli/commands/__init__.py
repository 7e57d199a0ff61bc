"""Sub-commands of the lapse CLI: each module here is one job.

A command module defines NAME, a docstring (its help) and `command(...)`, a Typer function whose
options carry their help and which returns the exit code. Heavy libraries are imported inside
`command`, so `lapse --help` stays fast. User errors are raised (LapseError), not printed: the one
handler in cli.main turns them into exit 2.
"""
