"""`python -m sodviz`."""

from sodviz.cli import main

raise SystemExit(main())
