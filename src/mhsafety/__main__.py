"""`python -m mhsafety`."""

from mhsafety.cli import main

main()
