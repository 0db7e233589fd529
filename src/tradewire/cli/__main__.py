import sys

from tradewire.cli import main

sys.exit(main())
