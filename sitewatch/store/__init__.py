"""Storage: migrations, the time-partitioned readings table, the COPY writer and queries."""
