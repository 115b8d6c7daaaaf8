"""HTTP handlers, one module per spec tag; function names are the spec's operationIds.

Thin by design: they translate HTTP to calls on the run manager and the catalog.
"""
