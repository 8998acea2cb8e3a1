from webapp.cli.main import main

raise SystemExit(main())
