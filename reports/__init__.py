"""Privacy reports for auditors: JSON and a self-contained HTML page, from the audit log and ledger."""
