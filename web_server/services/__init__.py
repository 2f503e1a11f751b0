"""Services: the logic between HTTP (or CLI, or jobs) and the database. They flush, never commit."""
