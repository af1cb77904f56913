"""Redis caches: namespaced keys, mandatory TTLs; never a source of truth."""
