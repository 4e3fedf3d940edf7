"""The Sitewatch processes: thin wiring of the broker and the database to the domain package."""
