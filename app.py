"""Start the assistant: settings from the environment, index built if missing, app served."""

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
