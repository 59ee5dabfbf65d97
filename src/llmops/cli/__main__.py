"""`python -m llmops.cli ...`."""

import sys

from llmops.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
