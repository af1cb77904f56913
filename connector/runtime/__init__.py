"""What runs a connector process: the supervisor (`runner`), the embedded services (`embedded`),
the shared resources (`resources`), health, logging and metrics."""
