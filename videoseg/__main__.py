from videoseg.cli.main import main

raise SystemExit(main())
