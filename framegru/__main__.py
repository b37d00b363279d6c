"""``python -m framegru`` (and ``torchrun -m framegru``) is the ``framegru`` command."""

import sys

from .cli import main

sys.exit(main())
