"""``python -m extschema`` is the same as the ``extschema`` console script."""

from extschema import cli

if __name__ == "__main__":
    cli.main()
