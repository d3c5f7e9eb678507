"""Django's PostgreSQL backend, with the portal's connection pool (ENGINE = "mbusportal.postgresql")."""
