import sys

from labctl.repos import main

sys.exit(main())
