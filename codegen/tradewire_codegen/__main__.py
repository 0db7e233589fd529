"""`python -m tradewire_codegen`."""

import sys

from tradewire_codegen.cli import main

sys.exit(main())
