from clipphotos.cli import main

raise SystemExit(main())
