"""``python -m onefeed ...`` = the ``onefeed`` command (so ``torchrun ... -m onefeed train``)."""

from onefeed.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
