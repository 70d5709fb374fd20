import sys

from synco.cli import main

sys.exit(main())
