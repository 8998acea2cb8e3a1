"""``python -m webapp``: the ``jotguard`` command, for a checkout without the console script."""

from webapp.cli.main import main

raise SystemExit(main())
