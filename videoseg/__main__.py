from videoseg.cli import main

raise SystemExit(main())
