"""`python -m msrnet ...` is `msrnet ...`."""
from msrnet.cli import main

raise SystemExit(main())
