import sys

from ams.cli.main import main

sys.exit(main())
