"""``python -m acbmse_rs``: the same as the ``acbmse`` command."""

import sys

from .cli import main

sys.exit(main())
