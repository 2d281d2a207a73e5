"""One module per CLI subcommand; see app/cli.py."""
