"""`python -m mlcicd` is the `mlcicd` command."""

from mlcicd.cli import main

main()
