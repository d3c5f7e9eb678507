"""The open settlement exchange format (version 1): a tenancy import and a settlement export.

The JSON schemas (draft 2020-12) are in schema/v1/ and served at /api/v1/exchange/schema/v1/<name>;
`export.settlement_export` writes the settlement export, `importing.import_tenancies` reads the tenancy
import (JSON, or its CSV flavour through `csv_flavour.document_from_csv`).
"""
