from steelkit.cli import main

raise SystemExit(main())
