from tvmq.cli import main

raise SystemExit(main())
