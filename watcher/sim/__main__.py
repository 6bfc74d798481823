from watcher.sim.exchange import main

raise SystemExit(main())
