"""Sub-commands of the lapse CLI: each module here is one command.

A command module defines `register(subparsers)`, which adds its parser and sets
`func=run` as a default, and `run(args) -> int`. Heavy libraries are imported
inside `run`, so `lapse --help` stays fast.
"""
