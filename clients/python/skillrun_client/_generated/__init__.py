"""Code generated from the OpenAPI contract (see scripts/generate.py); never edited by hand."""
