"""`python -m nas.cli ...` runs the `nas` command."""

from nas.cli import main

main()
