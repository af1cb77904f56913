"""Our DCP 1.0 Credential Service under `/dcp` (decision 0023): the Presentation API verifiers
query and the Storage API issuers write to. Errors are plain JSON (`connector.http.errors`,
"other" surface); every 401 is generic."""
