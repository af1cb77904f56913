"""A small credential issuer for development and tests (decision 0024): issues
MembershipCredentials to the participants of a local data space, revokes them through a
StatusList2021 list and serves the DCP 1.0 Credential Issuance Protocol. Not for production."""
