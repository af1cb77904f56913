"""Database backups: pg_dump/pg_restore plumbing (`pg`), backup targets (`storage`: a local
directory or an S3-compatible bucket) and the operations the ops activities call (`service`)."""
