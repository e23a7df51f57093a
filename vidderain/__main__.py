import sys

from vidderain.cli import main

sys.exit(main())
