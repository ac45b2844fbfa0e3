import sys

from raphe.cli import main

sys.exit(main())
