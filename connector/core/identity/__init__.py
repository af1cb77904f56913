"""Pure identity rules: registered-claim checks of self-issued tokens (identity.md §1.3, §1.8)."""
