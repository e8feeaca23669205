"""Client for the Tecken identity service.

`tecken_identity._generated` holds the code generated from
`protos/identity.proto`; the server imports its messages from there too.
"""
