"""Counterparty-facing DSP routes (HTTPS binding), per protocol version under `/dsp/<version>`.

Each protocol module (catalog here; negotiations and transfers in their own modules) exposes a
`router`; errors become the family's DSP `*Error` body in `connector.http_errors`."""
