from m2mcloud.cli import main

raise SystemExit(main())
