"""`python -m regcli` runs the same Typer app as the `regcli` console script."""

from regcli.cli import main

if __name__ == "__main__":
    main()
