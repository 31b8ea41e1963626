"""`python -m loadtests run|profiles` (see loadtests.run)."""

from loadtests.run import main

raise SystemExit(main())
