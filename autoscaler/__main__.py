"""`python -m autoscaler` runs the same CLI as the `autoscaler` console script."""

from autoscaler.cli.main import main

raise SystemExit(main())
