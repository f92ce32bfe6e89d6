//! Tern's pure domain: workspaces and keys, data layout above the table port, and the business rules.
