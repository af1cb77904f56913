from connector.runtime.lean import skip_unused_imports

skip_unused_imports()

from connector.cli import main  # noqa: E402

raise SystemExit(main())
