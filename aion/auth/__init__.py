"""Authentication, authorization and the audit log (docs/security.md).

Credentials (API keys Aion issues, JWTs, biscuits, client certificates) become `Claims`; the method table
(`methods`) and the roles (`roles`) decide; `guard` applies both to every call."""
