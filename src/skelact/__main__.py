"""Allows ``python -m skelact ...`` (needed under ``torchrun`` without the console script)."""

from skelact.cli import main

if __name__ == "__main__":
    main()
