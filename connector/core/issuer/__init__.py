"""Pure parts of the development issuer (decision 0024): status-list bits, credential claims and
the Credential Issuance Protocol messages. No I/O; time is always a parameter."""
