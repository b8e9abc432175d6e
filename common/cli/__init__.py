"""The command line: the LightningCLI both workflows run, and what only it needs."""
