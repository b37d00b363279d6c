"""``python -m framegru`` (and ``torchrun -m framegru``) is the ``framegru`` command."""

import sys

from .cli.app import main

sys.exit(main())
