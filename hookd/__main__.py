from __future__ import annotations

from hookd.cli import main

raise SystemExit(main())
