"""HTTP plumbing shared by every server and client: the guarded outbound client (`outbound`),
rate limiting (`ratelimit`) and the one mapping of errors to HTTP and DSP bodies (`errors`)."""
