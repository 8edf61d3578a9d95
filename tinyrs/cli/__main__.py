"""``python -m tinyrs.cli`` runs the ``tinyrs`` command line."""
import sys

from tinyrs.cli import main

sys.exit(main())
