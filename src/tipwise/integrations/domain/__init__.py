"""Pure rules of the integrations module: reading calendar feeds into busy intervals."""
