"""``python -m mobilenet``: the same as the ``mobilenet`` command."""

import sys

from mobilenet.cli import main

sys.exit(main())
