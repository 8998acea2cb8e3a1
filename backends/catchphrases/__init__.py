"""The demo API's data: movie catchphrases, kept in the same store kind as issuance."""
