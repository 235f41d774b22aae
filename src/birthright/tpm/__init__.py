"""TPM 2.0 wire structures and checks, in pure Python: what a verifier needs, no TSS.

The backend parses quotes, certify statements and public areas sent by devices it does not
trust; doing that here, with bounds checked on every read, keeps untrusted bytes out of C.
"""
