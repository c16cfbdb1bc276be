import sys

from bnsearch.cli import main

sys.exit(main())
