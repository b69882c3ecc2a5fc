"""`python -m keel.cli` is the `keel` command."""

from keel.cli.main import main

main()
