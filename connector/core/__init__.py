"""The pure core: DSP models, JSON-LD, policy engine, state machines, errors. No I/O here."""
