"""Worker processes: poll Temporal task queues and run workflows and activities."""
