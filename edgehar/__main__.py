import sys

from edgehar.cli import main

sys.exit(main())
